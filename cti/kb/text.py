"""The knowledge base's words, pure: what an article is indexed under and what a query looks for, both
segmented by jieba's search mode (the tokenizer of cti.hotspots.text, its dictionary loaded once for both), and
the matched words highlighted.

Search mode gives a long word and its parts (住房公积金 → 住房, 公积, 公积金…), so that an agent who types
part of a word (公积) or the whole of a longer one finds the article. The index is the words joined by spaces:
SQLite's FTS5 (unicode61 splits on the spaces) and PostgreSQL's tsvector (lexemes given as they are) take the
same words. Single characters and the words of a question (怎么, 什么时候, 办理…) say nothing of a topic and
are left out of a query. A few words citizens say for what articles call otherwise (医保 for 医疗保险, 房产证
for 不动产权证书…) are looked for too: SYNONYMS.

Highlighting escapes the text first, piece by piece, and puts <mark> only around what it found: nothing of
an article's text reaches a page as markup.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterable

import jieba

from cti.hotspots import text as hotspot_text

# what jieba should keep whole in the hotline's answers (it splits them, or joins them wrongly: 公交卡退卡 → 卡退)
WORDS = ("公交卡", "退卡", "上牌", "医保卡", "社保卡", "异地就医", "灵活就业", "居住证", "落户", "网签", "过户",
         "维权", "退费", "预付卡", "办卡", "补缴", "断缴", "转移接续", "停暖", "报装", "开户", "欠费", "缴费",
         "换表", "阶梯水价", "阶梯电价", "月票", "老年卡", "爱心卡", "营业执照", "食品安全", "价格欺诈",
         "不动产", "不动产权", "产权证", "房产证", "契税", "身份证", "户口本", "护照", "生育津贴", "失业金",
         "失业保险", "工伤", "养老金", "退休金", "提取", "贷款", "租房", "燃气表", "电费", "水费", "暖气费")
# what citizens say → what articles say (both directions are looked for)
SYNONYMS = {
    "医保": ("医疗保险",), "社保": ("社会保险",), "房产证": ("不动产权证书", "不动产"), "户口": ("户籍",),
    "退休金": ("养老金",), "暖气": ("供暖", "供热"), "煤气": ("燃气", "天然气"), "天然气": ("燃气",),
    "公交卡": ("乘车卡",), "失业金": ("失业保险金",), "网购": ("网络购物", "电商"), "退钱": ("退款", "退费"),
    "停暖": ("供暖",), "电动车": ("电动自行车",), "营业执照": ("工商登记",), "身份证": ("居民身份证",),
    "医保卡": ("社保卡",), "暖气费": ("采暖费",), "跑路": ("关门", "停业"), "太吵": ("噪音", "扰民"), "吵": ("噪音",),
}
# what citizens say in a phrase jieba has no word for (a single character, mostly) → the articles' words
PHRASES = {
    "取": ("提取",), "丢了": ("丢失", "补办", "挂失"), "丢失": ("补办", "挂失"), "网上买": ("网购",), "能退": ("退货",),
    "没电": ("停电",), "没水": ("停水",), "不来水": ("停水",), "跑了": ("跑路",), "交钱": ("缴费",), "交费": ("缴费",),
    "怎么交": ("缴纳", "缴费"), "上户口": ("落户", "出生登记"), "几号发": ("发放",), "多少钱": ("标准", "收费"),
    "办卡": ("办理",), "补卡": ("补办",), "吵": ("噪音",), "没人修": ("维修",), "坏了": ("维修", "故障"),
    "迁过来": ("迁入",), "迁到": ("迁入",),
}
QUESTION_WORDS = frozenset("""
    怎么 怎么办 怎样 如何 什么 什么样 什么时候 时候 哪里 哪儿 哪个 哪些 多少 多久 几天 为什么 是否 能不能 可不可以
    可以 能否 需要 要求 请问 咨询 一下 办理 办 问 想 要 我 我们 你们 他们 的 了 吗 呢 吧 啊 和 与 及 或 在 是 有 没有
    不 去 到 给 让 被 把 还 又 就 都 也 该 应该 手续 流程 规定 相关 问题 情况 市民 来电 请 帮 帮忙 知道 告诉
    东西 家里 家中 楼上 楼下 今天 昨天 现在 一直 已经 老板 师傅 人家 这个 那个 这样 那样 时间
""".split()) | hotspot_text.STOP_WORDS
_WORD = re.compile(r"\w+")
_lock = threading.Lock()
_ready = False


def _tokenizer() -> jieba.Tokenizer:
    """The hotspots' jieba tokenizer (one dictionary in memory), with the knowledge base's words added once."""
    global _ready
    tokenizer: jieba.Tokenizer = hotspot_text._segmenter().tokenizer
    with _lock:
        if not _ready:
            for word in WORDS:
                tokenizer.add_word(word, freq=100_000, tag="n")
            _ready = True
    return tokenizer


def warm_up() -> None:
    """Load jieba's dictionary now (about a second), rather than in the first search."""
    words("公积金")


def words(text: str) -> list[str]:
    """Every word of ``text`` jieba's search mode gives (parts of long words too), lower case, in order, less
    punctuation and single characters (digits and Latin letters of two or more count: 12315, app)."""
    found = []
    for word in _tokenizer().cut_for_search(text):
        word = word.strip().lower()
        if len(word) >= 2 and _WORD.fullmatch(word):
            found.append(word)
    return found


def index_text(*texts: str) -> str:
    """What an article is indexed under: its words, space-joined."""
    return " ".join(w for text in texts for w in words(text))


def _dictionary_pairs(text: str) -> list[str]:
    """The two characters next to each other in ``text`` that are words of jieba's dictionary: what a query
    means that jieba joined otherwise (煤气味 → 煤, 气味: 煤气 is found by its pair)."""
    known = _tokenizer().FREQ
    pairs = (text[i:i + 2] for i in range(len(text) - 1))
    return [p for p in pairs if _WORD.fullmatch(p) and not p.isascii() and known.get(p)]


def query_words(query: str) -> list[str]:
    """What a query looks for: its words (jieba's, and the dictionary's pairs of characters in it) less the words
    of a question, each once, with their synonyms and what PHRASES says its phrases mean; the words of a question
    only if that is all there is."""
    typed = words(query) + [w for w in _dictionary_pairs(query.lower())]
    typed += [w for phrase, meant in PHRASES.items() if phrase in query for w in meant]
    kept = [w for w in typed if w not in QUESTION_WORDS] or typed
    found: dict[str, None] = {}
    for word in kept:
        found.setdefault(word, None)
        for other in SYNONYMS.get(word, ()):
            for part in words(other):
                found.setdefault(part, None)
    for word, others in SYNONYMS.items():  # the other way: an article's word typed, the citizens' found too
        if word not in found and any(o in found for o in others):
            found.setdefault(word, None)
    return list(found)


# -- highlighting -------------------------------------------------------------------------------------------

def _spans(text: str, terms: Iterable[str]) -> list[tuple[int, int]]:
    """Where ``terms`` occur in ``text`` (case-insensitive), longest first, not overlapping, in order."""
    lower = text.lower()
    taken: list[tuple[int, int]] = []
    for term in sorted(set(terms), key=len, reverse=True):
        at = lower.find(term)
        while at >= 0:
            end = at + len(term)
            if all(end <= a or at >= b for a, b in taken):
                taken.append((at, end))
            at = lower.find(term, end)
    return sorted(taken)


def highlight(text: str, terms: Iterable[str]) -> str:
    """``text`` as HTML: escaped, with <mark> around each occurrence of ``terms``."""
    out, at = [], 0
    for start, end in _spans(text, terms):
        out += [html.escape(text[at:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        at = end
    out.append(html.escape(text[at:]))
    return "".join(out)


def snippet(text: str, terms: Iterable[str], size: int = 90) -> str:
    """About ``size`` characters of ``text`` around where most of ``terms`` occur, highlighted; its start when
    none does. … marks what was cut."""
    flat = " ".join(text.split())
    spans = _spans(flat, terms)
    if len(flat) <= size:
        return highlight(flat, terms)
    start = 0
    if spans:  # the window holding the most matches, opened a little before the first of them
        best = max(range(len(spans)), key=lambda i: sum(1 for s, _ in spans[i:] if s < spans[i][0] + size))
        start = max(0, min(spans[best][0] - size // 6, len(flat) - size))
    piece = flat[start:start + size]
    return ("…" if start > 0 else "") + highlight(piece, terms) + ("…" if start + size < len(flat) else "")


# -- the backends' spellings of the same words ----------------------------------------------------------------

def fts5_match(terms: Iterable[str]) -> str:
    """An FTS5 MATCH of any of ``terms`` (words of ``words``: letters and digits only, quoted whole)."""
    return " OR ".join(f'"{t}"' for t in terms if _WORD.fullmatch(t))


def tsquery(terms: Iterable[str]) -> str:
    """A PostgreSQL tsquery (its input form, no parser) of any of ``terms``."""
    return " | ".join(f"'{t}'" for t in terms if _WORD.fullmatch(t))


def tsvector(title: str, tags: str, body: str) -> str:
    """A PostgreSQL tsvector in its input form (no parser, no locale): each word of the space-joined ``title``,
    ``tags`` and ``body`` with its positions, weighted A, B and D."""
    positions: dict[str, list[str]] = {}
    at = 0
    for words_, weight in ((title, "A"), (tags, "B"), (body, "D")):
        for word in words_.split():
            at += 1
            found = positions.setdefault(word, [])
            if len(found) < 255 and at <= 16383:  # PostgreSQL keeps 256 positions a word, up to 16383
                found.append(f"{at}{weight}")
    return " ".join(f"'{w}':{','.join(p)}" if p else f"'{w}'" for w, p in positions.items() if _WORD.fullmatch(w))
