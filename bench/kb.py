"""Knowledge-base search over 50,000 articles: generated from the sample articles' sentences (each article a title
and 4-8 sentences drawn from them, over the catalogue's units, 90% published, some out of date), written through
cti's store (cti.store.kb: jieba's words into FTS5 / the tsvector) in batches of 1,000, then the 40 agent queries
of tests/test_kb.py searched as an agent (published, valid today, top 10, highlighted) round after round. Target:
p99 ≤ 50 ms on SQLite. The database is made in a temporary folder (and a scratch PostgreSQL schema, removed).

    .venv/bin/python bench/kb.py [--articles 50000] [--rounds 10] [--pg postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cti.kb import files, model  # noqa: E402
from cti.kb.model import Viewer  # noqa: E402
from cti.kb.service import KnowledgeBase  # noqa: E402
from cti.store.database import Database  # noqa: E402
from tests.test_kb import QUERIES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Asia/Shanghai")
UNITS = ["housing-fund", "human-resources-social-security", "shouchuang-water", "yuncheng-power", "city-heating",
         "minsheng-gas", "jingwei-gas", "public-transport", "market-regulation", "public-security",
         "planning-natural-resources", "housing-construction", "taxation", "civil-affairs", "ecology-environment", ""]


def generated(count: int, rng: random.Random) -> list[tuple[model.Article, model.Version]]:
    drafts = files.read(ROOT / "knowledge")
    sentences = [s.strip() for d in drafts for s in re.split(r"(?<=[。；：\n])", d.body) if len(s.strip()) > 6]
    titles = [d.title for d in drafts]
    now = datetime.now(UTC)
    made = []
    for n in range(count):
        base = rng.choice(titles)
        title = f"{base}（{rng.choice(['', '补充', '问答', '常见问题', '办事指南'])}{n}）"
        body = "".join(rng.sample(sentences, rng.randint(4, 8)))
        state = "published" if rng.random() < 0.9 else rng.choice(["draft", "reviewed", "retired"])
        valid_to = date.today() - timedelta(days=1) if rng.random() < 0.05 else None
        article = model.Article(0, rng.choice(UNITS), title, body, (base[:8],), None, valid_to, state, 1, "bench",
                                now, now)
        made.append((article, model.Version(0, 1, "create", now, "bench", article)))
    return made


async def run(url: str, count: int, rounds: int, **options: object) -> None:
    database = await Database.open(url, **options)  # type: ignore[arg-type]
    try:
        rng = random.Random(14)
        articles = generated(count, rng)
        started = time.perf_counter()
        for at in range(0, count, 1000):
            await database.kb.create_many(articles[at:at + 1000])
        loaded = time.perf_counter() - started
        kb = KnowledgeBase(database.kb, ZONE)
        agent = Viewer("agent", "bench")
        await kb.search(agent, "公积金")  # jieba's dictionary, the caches
        times, found = [], 0
        for _ in range(rounds):
            for query in QUERIES:
                t = time.perf_counter()
                hits = await kb.search(agent, query, limit=10)
                times.append((time.perf_counter() - t) * 1000)
                found += bool(hits)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{database.engine.dialect.name}: {count} articles written in {loaded:.0f} s; {len(times)} searches: "
              f"p50 {statistics.median(times):.1f} ms, p99 {p99:.1f} ms, max {times[-1]:.1f} ms; "
              f"{found / len(times):.0%} found something", flush=True)
    finally:
        await database.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pg", help="also on this PostgreSQL (a scratch schema, dropped afterwards)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        await run(f"sqlite:///{Path(folder) / 'kb.db'}", args.articles, args.rounds)
    if args.pg:
        import asyncpg

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f"CREATE SCHEMA {schema}")
        try:
            await run(args.pg, args.articles, args.rounds,
                      connect_args={"server_settings": {"search_path": schema}})
        finally:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
