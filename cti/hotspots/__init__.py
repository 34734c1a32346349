"""Hotspots and risk alerts (热点分析, 风险预警; issue 13, point 3): spikes of a category in a place against its own
baseline, bursts of callers about the same thing within an hour, repeat callers; the alerts they raise."""
