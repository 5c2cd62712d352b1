"""``text.analyze``: word and sentence counts, top words and a lexicon sentiment score; deterministic."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from functions.executor.tools.base import StrictParams

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "text.analyze"
DESCRIPTION = "Count words and sentences, list the top words as [word, count] pairs, and score sentiment."
ISOLATED = True  # CPU-bound: runs in a worker process the executor kills at the node's timeout

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]\u201d\u2019]*\s+|\n\s*\n")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _words(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves also may might must
    shall s t don isn aren wasn weren won let it's i'm you're we're they're that's there's"""
)
POSITIVE = _words(
    """good great excellent amazing awesome wonderful fantastic love loved loves lovely like liked enjoy enjoyed
    happy glad pleased delight delighted best better nice beautiful brilliant superb perfect positive success
    successful win wins winning won benefit helpful easy fast clean clear elegant reliable robust safe secure
    stable strong impressive improve improved improvement fix fixed recommend favorite fun exciting excited
    remarkable outstanding efficient effective correct fine joy thanks thank grateful praise well"""
)
NEGATIVE = _words(
    """bad terrible awful horrible poor worse worst hate hated hates dislike disliked sad angry annoyed annoying
    ugly broken bug bugs buggy crash crashes crashed fail fails failed failure error errors wrong slow hard
    difficult confusing confused messy dirty unreliable unstable unsafe insecure weak problem problems issue
    issues negative loss lose losing lost boring disappointing disappointed painful pain useless fragile flaky
    complex complicated risk risky danger dangerous regret sorry worry worried fear afraid mistake"""
)
NEGATORS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "hardly"})


class Params(StrictParams):
    text: str = Field(description="The text to analyze (for example an http.get node's text).")
    top: int = Field(default=10, ge=1, le=100, description="How many top words to return.")
    min_length: int = Field(default=3, ge=1, le=50, description="Shortest word counted in top_words.")
    stopwords: bool = Field(default=True, description="Leave common English words out of top_words.")
    strip_html: bool = Field(default=False, description="Treat text as HTML: drop tags, scripts and styles first.")


class Sentiment(BaseModel):
    score: float = Field(description="(positive - negative) / (positive + negative), from -1 to 1; 0 when neutral.")
    label: Literal["positive", "negative", "neutral"]
    positive: int = Field(description="Positive lexicon words found (a negated one counts as negative).")
    negative: int = Field(description="Negative lexicon words found (a negated one counts as positive).")


class Output(BaseModel):
    word_count: int
    unique_words: int
    character_count: int
    sentence_count: int
    average_sentence_words: float
    top_words: list[tuple[str, int]] = Field(
        description="[[word, count], ...], most frequent first, ties alphabetical; chart.bar takes it as its series."
    )
    sentiment: Sentiment


_SKIPPED = ("script", "style", "noscript", "template")
_BLOCKS = frozenset({"p", "br", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article"})
_TAG_NAME = re.compile(r"(/?)([A-Za-z][A-Za-z0-9:-]*)")
_SKIP_END = {name: re.compile(rf"</{name}(?=[\s/>])", re.IGNORECASE) for name in _SKIPPED}


def _html_text(markup: str) -> str:
    """The text of HTML: tags dropped (blocks become paragraph breaks), scripts, styles and comments skipped.

    One forward scan (every search starts where the last ended), so any input takes linear time; a ``<``
    that opens no tag, or a tag never closed by ``>``, is text.
    """
    import html

    parts: list[str] = []
    pos, size = 0, len(markup)
    closes = True  # whether a ``>`` may still follow: once none does, no later ``<`` opens a tag
    while pos < size:
        lt = markup.find("<", pos) if closes else -1
        if lt < 0:
            parts.append(html.unescape(markup[pos:]))
            break
        if markup.startswith("<!--", lt):
            parts.append(html.unescape(markup[pos:lt]))
            end = markup.find("-->", lt + 4)
            pos = size if end < 0 else end + 3
            continue
        name = _TAG_NAME.match(markup, lt + 1)
        is_markup = name is not None or markup.startswith(("<!", "<?"), lt)
        gt = markup.find(">", lt + 1) if is_markup else -1
        if gt < 0:
            closes = closes and not is_markup
            parts.append(html.unescape(markup[pos : lt + 1]))
            pos = lt + 1
            continue
        parts.append(html.unescape(markup[pos:lt]))
        pos = gt + 1
        if name is None:
            continue
        tag = name.group(2).lower()
        if name.group(1):
            continue
        if tag in _BLOCKS:
            parts.append("\n\n")
        elif tag in _SKIPPED and markup[gt - 1 : gt] != "/":
            end_tag = _SKIP_END[tag].search(markup, pos)
            if end_tag is None:
                break
            after = markup.find(">", end_tag.end())
            pos = size if after < 0 else after + 1
    return "".join(parts)


def _sentiment(words: list[str]) -> Sentiment:
    positive = negative = 0
    for i, word in enumerate(words):
        polarity = 1 if word in POSITIVE else -1 if word in NEGATIVE else 0
        if not polarity:
            continue
        if any(w in NEGATORS or w.endswith("n't") for w in words[max(0, i - 2) : i]):
            polarity = -polarity
        if polarity > 0:
            positive += 1
        else:
            negative += 1
    total = positive + negative
    score = round((positive - negative) / total, 4) if total else 0.0
    label: Literal["positive", "negative", "neutral"] = (
        "positive" if score > 0.05 else "negative" if score < -0.05 else "neutral"
    )
    return Sentiment(score=score, label=label, positive=positive, negative=negative)


def run(params: Params, ctx: ToolContext) -> Output:
    text = _html_text(params.text) if params.strip_html else params.text
    words = [w.replace("\u2019", "'") for w in _WORD.findall(text.lower())]
    sentences = [s for s in _SENTENCE_END.split(text) if _WORD.search(s)]
    counted = Counter(
        w
        for w in words
        if len(w) >= params.min_length and not w.isdigit() and not (params.stopwords and w in STOPWORDS)
    )
    top = sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))[: params.top]
    return Output(
        word_count=len(words),
        unique_words=len(set(words)),
        character_count=len(text),
        sentence_count=len(sentences),
        average_sentence_words=round(len(words) / len(sentences), 2) if sentences else 0.0,
        top_words=top,
        sentiment=_sentiment(words),
    )
