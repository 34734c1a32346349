"""The place and the topic words of a case's text. Pure (jieba reads its dictionary once, from its package).

A case's ``location`` is free text as the agent typed it (山西省运城市盐湖区北城街道解放路12号). Its district
(区县) is the last administrative part of the chain it starts with: a 区, 县 or 旗, else a county-level 市
(永济市). Text that names none (解放路) has no district: NO_PLACE.

Topic words are what a complaint is about: the content segmented by jieba (its part-of-speech tagger), keeping
nouns, verbs and adjectives of two characters or more, less place names, times, numbers, the hotline's own words
(反映, 投诉, 希望…) and a short stop-word list. A few words of citizens' complaints that jieba's dictionary
splits or does not know (爆管, 停水, 断电…) are added to it, so that they come out whole.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

import jieba
import jieba.posseg

NO_PLACE = "未注明区县"
_PART = re.compile(r"[\u4e00-\u9fff]{1,7}?(?:自治区|自治县|省|市|区|县|旗)")
_NOT_ADMINISTRATIVE = re.compile(r"[路街道镇乡村号巷弄楼栋]|小区|社区|园区|超市|门市|夜市")

# what jieba should keep whole: the things citizens call 12345 about
WORDS = ("停水", "断水", "停电", "断电", "爆管", "漏水", "跳闸", "噪音", "扰民", "供暖", "暖气", "水管", "自来水",
         "管道", "燃气", "漏气", "井盖", "积水", "路灯", "垃圾", "污水", "异味", "拖欠", "工资", "占道", "施工",
         "电梯", "信号", "网络", "水压", "停气", "塌陷", "油烟", "违建", "渣土")
KEEP = ("n", "nr", "nz", "nt", "ng", "v", "vn", "vd", "a", "an", "l", "i", "j")  # jieba's tags kept
STOP_WORDS = frozenset("""
    反映 投诉 举报 咨询 求助 建议 希望 要求 请求 处理 解决 相关 部门 市民 来电 来电人 热线 问题 情况 事情 现象 表示
    已经 现在 目前 一直 没有 不能 无法 还是 仍然 多次 经常 整个 突然 附近 周边 楼下 楼上 家里 家中 我们 他们 自己 大家
    小时 时间 今天 昨天 晚上 早上 凌晨 上午 下午 中午 每天 天天 一下 一个 两个 这个 那个 什么 怎么 为什么 是否 可以 需要
    知道 告知 导致 造成 影响 出现 发生 进行 存在 给予 帮助 尽快 及时 马上 立即 严重 非常 特别 比较 小区 居民 住户 业主
    开始 已有 恢复 尽快恢复 街道 所需 说明 回复 联系 打电话 电话 工作人员 有关 单位 公司 师傅 看看 发现
    说 是 有 没 到 去 来 要 让 把 被 给 在 了
""".split())

_lock = threading.Lock()
_tokenizer: jieba.posseg.POSTokenizer | None = None


def district(location: str) -> str:
    """The district (区县) a location text names, or NO_PLACE."""
    parts: list[str] = []
    at = 0
    text = location.strip()
    while (match := _PART.match(text, at)) is not None and not _NOT_ADMINISTRATIVE.search(match.group()):
        parts.append(match.group())
        at = match.end()
    counties = [p for p in parts if p.endswith(("区", "县", "旗"))]
    if counties:
        return counties[-1]
    cities = [p for p in parts if p.endswith("市")]
    if len(cities) >= 2 or (cities and at == len(text)):  # 运城市永济市…, or a county-level city alone
        return cities[-1]
    if cities and not any(p.endswith("省") for p in parts) and len(cities[0]) <= 3:
        return cities[-1]  # 永济市城西街道: a short 市 first is the place named
    return NO_PLACE


def _segmenter() -> jieba.posseg.POSTokenizer:
    global _tokenizer
    with _lock:
        if _tokenizer is None:
            jieba.setLogLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()
            for word in WORDS:
                tokenizer.add_word(word, freq=200_000, tag="v" if word.startswith(("停", "断", "爆", "漏")) else "n")
            _tokenizer = jieba.posseg.POSTokenizer(tokenizer)
        return _tokenizer


def warm_up() -> None:
    """Load jieba's dictionary now (about a second), rather than in the first sweep."""
    topic_words("停水")


def topic_words(content: str) -> list[str]:
    """The topic words of a text, in order, each once."""
    seen: dict[str, None] = {}
    for pair in _segmenter().cut(content):
        word, flag = pair.word, pair.flag
        if len(word) >= 2 and flag in KEEP and word not in STOP_WORDS and not word.isdigit():
            seen.setdefault(word, None)
    return list(seen)


def all_topic_words(contents: Iterable[str]) -> list[list[str]]:
    return [topic_words(c) for c in contents]
