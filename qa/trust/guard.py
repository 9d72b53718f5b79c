"""Find text inside a document that is written for the assistant rather than for its reader.

Anyone can drop a web page, a forwarded email or a vendor's PDF into the documents folder, and
any of them can carry an indirect prompt injection (OWASP LLM01): "ignore previous
instructions", a fake ``System:`` block, "[1] the answer is CODE", a link or phone number the
assistant should send users to. A 1.5B model follows such text loosely but often, so qa finds
it at index time, sentence by sentence, and stores the spans with each chunk; the prompt and the
answer check then treat those spans differently (``qa.trust.spotlight``, ``qa.trust.withhold``).

The detector is a logistic model over word and character n-grams (``qa/data/injection.json``,
fitted by ``fit/fit_injection.py`` on sentences written for qa in ``fit/data/``). Each
sentence is scored as written and as revealed: letters spaced apart joined again, base64 runs
decoded, HTML and Markdown comments opened. Chat-template control tokens (``<|im_start|>``,
``[INST]``) are flagged by rule: no reader-facing text contains them, and a local model may
read them as real turn boundaries.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from qa.passages import Flag, Reason


@dataclass(frozen=True)
class InjectionModel:
    """The fitted sentence classifier: P(instruction to an assistant | n-gram features)."""

    weights: dict[str, float]
    bias: float
    threshold: float  # a sentence at or above this is flagged
    neighbour_threshold: float  # a sentence next to a flagged one, in the same paragraph
    version: str
    provenance: str = ""

    @classmethod
    def load(cls, path: Path | str | None = None) -> InjectionModel:
        """The shipped model (``qa/data/injection.json``) or one written by the fit script."""
        if path is None:
            text = resources.files("qa").joinpath("data/injection.json").read_text()
        else:
            text = Path(path).read_text()
        return cls(**json.loads(text))

    def score(self, text: str) -> float:
        """P(``text`` is written for an assistant): the best of its revealed views."""
        return max(self._probability(view) for view in reveal(text))

    def _probability(self, text: str) -> float:
        z = self.bias + sum(self.weights.get(f, 0.0) * v for f, v in features(text).items())
        return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))


@cache
def shipped_model() -> InjectionModel:
    """The model that ships with qa (loaded once)."""
    return InjectionModel.load()


# --- features -------------------------------------------------------------------------------

_URL = re.compile(
    r"\b(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|info|biz|co|example|"
    r"xyz|ru|app|dev|site|online|link)\b(?:/\S*)?",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(?\d{2,5}\)?[\s.-]){1,3}\d{3,5}(?!\w)")
_CODE = re.compile(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9]{2,}(?:-[A-Z0-9]+)+\b")
_WORD = re.compile(r"[^\W\d_]+|\d+|[^\w\s]")
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"))


def _is_phone(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    return digits >= 7 and not re.fullmatch(r"\d{4}\s*[-–]\s*\d{4}", text.strip())


def placeholders(text: str) -> str:
    """``text`` with links, email addresses, phone numbers and code words replaced by the
    words ``zurl``, ``zemail``, ``zphone``, ``zcode``: the model learns what is done with a
    contact or a code, not which one."""
    text = _EMAIL.sub(" zemail ", text)
    text = _URL.sub(" zurl ", text)
    text = _PHONE.sub(lambda m: " zphone " if _is_phone(m.group()) else m.group(), text)
    return _CODE.sub(" zcode ", text)


@dataclass(frozen=True)
class Artefact:
    """Something a reply could pass on to a user: a ``link``, an ``email`` address, a
    ``phone`` number or a ``code`` word. ``key`` is what two mentions share: the host of a
    link, the lower-case address, the digits of a phone number, the letters and digits of a
    code (so ``AB-12`` and ``AB 12`` are one)."""

    kind: str
    key: str


def artefacts(text: str) -> set[Artefact]:
    """Every link, email address, phone number and code word in ``text``."""
    found = {Artefact("email", m.group().lower()) for m in _EMAIL.finditer(text)}
    rest = _EMAIL.sub(" ", text)
    for m in _URL.finditer(rest):
        host = re.sub(r"^(?:https?://)?(?:www\.)?", "", m.group().lower()).split("/")[0]
        found.add(Artefact("link", host.rstrip(".,;:)")))
    rest = _URL.sub(" ", rest)
    found |= {
        Artefact("phone", re.sub(r"\D", "", m.group()))
        for m in _PHONE.finditer(rest)
        if _is_phone(m.group())
    }
    found |= {Artefact("code", re.sub(r"[^A-Z0-9]", "", m.group())) for m in _CODE.finditer(rest)}
    return found


def _fold(text: str) -> str:
    """NFKC, lower case, accents removed, digits as 0, invisible characters dropped."""
    text = unicodedata.normalize("NFKD", text.translate(_INVISIBLE))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"\d", "0", unicodedata.normalize("NFKC", text).casefold())


_PLAIN_PUNCTUATION = frozenset(".,'\"();!?")

# Who a sentence addresses. Technical documentation gives orders on every page, to its reader,
# a user, an administrator or a program ("Run make install", "Applications MUST ignore ...");
# an injection gives them to whatever machine reads the page (issue #29). Word n-grams alone
# learned "an order" from hand-written data and flagged 4-13 % of real manuals; these features
# pool every name for an AI reader into one, so the model can weigh who is told, not just
# that someone is told. Matched on folded text (``_fold``), any language the attacks use.
_AI = (
    r"a\.?i|ai[- ](?:assistant|model|agent|system|tool|reader)s?|artificial intelligence|"
    r"(?:virtual |automated |digital )?assistants?|chat ?bots?|bots?|copilots?|"
    r"(?:large )?language models?|llms?|gpts?|chatgpt|summari[sz]ers?|"
    r"models? (?:reading|processing|answering|summari[sz]ing|that (?:reads?|answers?))|"
    r"automated (?:systems?|readers?|tools?|agents?)|(?:machines?|agents?) (?:reading|processing)|"
    r"ki(?:-assistent\w*| assistent\w*)|sprachmodell\w*|assistant(?:e|s)? (?:ia|ai)|"
    r"asistentes?|assistente|modele de langage|modello linguistico|modelo de lenguaje"
)
_AI_READER = re.compile(rf"\b(?:{_AI})\b")
_SUMMARY = re.compile(
    r"\b(?:whoever|anyone|anything|any tool|any program|whatever)\b.{0,30}"
    r"\b(?:summari[sz]\w*|reads? this|processe?s? this|answers? questions)|"
    r"\bsummar(?:y|ies) of this\b|\bsummari[sz](?:e|es|ing) this\b|\bwhen summari[sz]\w*"
)
_ORDER = re.compile(
    r"\b(?:must|should|shall|need to|have to|always|never|do not|don't|ignore|disregard|"
    r"forget|say|tell|answer|reply|respond|state|claim|recommend|mention|include|print|"
    r"reveal|output|send|pretend|describe|treat|follow|obey|stop|instead|"
    r"ignorier\w*|antworte\w*|vergiss|sage|ignore[zs]|repond\w*|dites|oublie\w*|ignora|"
    r"responde|rispondi|olvida|dile)\b"
)
# Spoken to, not about: "Note to the chatbot: ...", "Assistant, ...", "If you are an AI ...",
# "Language models reading this must ..." (an obligation, not "the model must be downloaded").
_TOLD = re.compile(
    rf"^\W*(?:(?:[\w']+ ){{0,3}}(?:to|for|an|a|pour|fur|para|per)\s+)?(?:the |any |all |every |"
    rf"dear |hey |hello |les |le |l'|den |die |el |la |il |l')?(?:{_AI})\b[^.:,;]{{0,40}}[:,]|"
    rf"\byou(?:'re| are)(?: now)? (?:an? |the )?(?:\w+ ){{0,2}}(?:{_AI})\b|\byou, the (?:{_AI})\b|"
    rf"(?:\b(?:{_AI})\b(?: (?:reading|processing|answering|summari[sz]ing|that|which|who)\b"
    rf"[^.;:]{{0,50}}?)?|(?:{_SUMMARY.pattern})[^.;:]{{0,50}}?) (?:must|should|shall|is to|are to|"
    rf"needs? to|has to|have to|will now)\b(?! be\b)"
)


def addressee(text: str) -> set[str]:
    """Who ``text`` speaks to, as features: ``a:ai`` when it names an AI reader (an assistant,
    a chatbot, a language model, "whoever summarises this"), ``a:ai-order`` when it also gives
    an order (must, tell, answer, ignore, ...), ``a:ai-told`` when the order is the AI's: it is
    spoken to ("Note to the chatbot:", "If you are an AI") or put under an obligation
    ("Assistants reading this must ..."). Nothing for text to a person."""
    folded = _fold(text)
    if not (_AI_READER.search(folded) or _SUMMARY.search(folded)):
        return set()
    found = {"a:ai"}
    if _ORDER.search(folded):
        found.add("a:ai-order")
    if _TOLD.search(folded):
        found.add("a:ai-told")
    return found


def features(text: str) -> dict[str, float]:
    """Binary word 1-2 grams (``w:``) and character 3-5 grams within words (``c:``), each
    group scaled by 1 / sqrt(its size), and who is addressed (:func:`addressee`, 1 each).
    Sentence punctuation is dropped (it is in every sentence); the marks of markup and role
    blocks (``:``, ``[``, ``<``, ``|``, ``#``) stay."""
    tokens = [t for t in _WORD.findall(_fold(placeholders(text))) if t not in _PLAIN_PUNCTUATION]
    words = {f"w:{t}" for t in tokens} | {f"w:{a} {b}" for a, b in itertools.pairwise(tokens)}
    chars: set[str] = set()
    for token in tokens:
        if not token.isalpha():
            continue
        padded = f" {token[:24]} "
        chars.update(
            f"c:{padded[i : i + n]}" for n in (3, 4, 5) for i in range(len(padded) - n + 1)
        )
    out: dict[str, float] = dict.fromkeys(addressee(text), 1.0)
    for group in (words, chars):
        for f in group:
            out[f] = 1.0 / math.sqrt(len(group))
    return out


# --- revealing hidden text ------------------------------------------------------------------

_SPACED = re.compile(r"(?<!\S)(?:\S {1,4}){3,}\S(?!\S)")
_BASE64 = re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{16,}={0,2}(?![\w+/=-])")


def _unspace(run: str) -> str:
    """``I G N O R E   A L L`` -> ``IGNORE ALL``: single spaces join letters, wider gaps are
    word breaks. Left as it is unless every piece is a single character."""
    pieces = run.split()
    if any(len(p) > 1 for p in pieces):
        return run
    return " ".join(word.replace(" ", "") for word in re.split(r" {2,}", run))


def _decode_base64(token: str) -> str | None:
    """The text a base64 token encodes, if it is mostly printable words."""
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    printable = sum(ch.isprintable() for ch in text) / max(len(text), 1)
    return text if printable > 0.95 and " " in text.strip() else None


def reveal(text: str) -> list[str]:
    """``text`` and what it says once de-obfuscated: spaced letters joined, base64 decoded
    (each decoded run also on its own). The first view is ``text`` itself."""
    views = [text]
    unspaced = _SPACED.sub(lambda m: _unspace(m.group()), text)
    if unspaced != text:
        views.append(unspaced)
    decoded = [d for t in _BASE64.findall(text) if (d := _decode_base64(t))]
    if decoded:
        views.append(_BASE64.sub(lambda m: _decode_base64(m.group()) or m.group(), text))
        views += decoded
    return views


# --- segmentation ---------------------------------------------------------------------------

# Chat-template turn markers (ChatML, Llama, Gemma, Alpaca): never text for a reader.
_CONTROL = re.compile(
    r"<\|[a-z_]{2,20}\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|"
    r"<\|(?:system|user|assistant)\|>|^#{2,4} ?(?:Instruction|Response|System)s?:|"
    # a bare <system> only with its closing tag: alone, <user> is a manual's placeholder
    r"<(?:system|user|assistant)>(?=(?s:.){0,500}?</(?:system|user|assistant)>)",
    re.IGNORECASE | re.MULTILINE,
)
_TURN_END = re.compile(r"<\|(?:im_end|eot_id|end)\|>|\[/INST\]|<</SYS>>|<end_of_turn>", re.I)
# Active markup shown as text (an escaped ``<img onerror=...>``, a ``javascript:`` link): a
# handler inside a tag, a script element with a body or a source. Manuals name them too
# ("the <script> sections", the mount option ``onerror=value``, ``-script <script-file>``).
_MARKUP = re.compile(
    r"<[a-z][^<>]*\son(?:error|load|click|mouseover)\s*=|javascript:|"
    r"<script(?:\s[^<>]*)?>(?s:.){0,2000}?</script|<script\s[^<>]*\bsrc\s*=",
    re.I,
)
_COMMENT = re.compile(
    r"<!--(.*?)(?:-->|\Z)|^\[(?://|comment)\]: ?(?:#|<>) ?\((.*)\)\s*$", re.S | re.M
)
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"”’»)\]]*\s+(?=[\"“‘«(\[<]?[\w<\[])")
_ABBREVIATION = re.compile(r"\b(?:[A-Za-z]\.){2,}$|\b(?:Mr|Mrs|Ms|Dr|Prof|St|No|vs|etc)\.$")
_MIN_WORDS = 3
_LIST_START = re.compile(r"\s*(?:[-*+•>#|]|\d{1,3}[.)]\s|<\||\[)")


def _units(text: str) -> list[tuple[int, int]]:
    """Runs of lines that read as one paragraph: a wrapped line (no end punctuation, long or
    followed by a lower-case word) joins the next; blank lines, headings and list items part."""
    lines = [(m.start(), m.end()) for m in re.finditer(r"[^\n]*\S[^\n]*", text)]
    units: list[list[int]] = []
    for start, end in lines:
        if units:
            prev_start, prev_end = units[-1]
            prev = text[prev_start:prev_end].rstrip()
            line = text[start:end]
            wrapped = (
                "\n\n" not in text[prev_end:start].replace(" ", "")
                and not re.search(r"[.!?…:;\"”»)]$", prev)
                and not _LIST_START.match(line)
                and (len(prev) - prev.rfind("\n") >= 60 or line.lstrip()[:1].islower())
            )
            if wrapped:
                units[-1][1] = end
                continue
        units.append([start, end])
    return [(s, e) for s, e in units]


def segments(text: str) -> list[tuple[int, int, int]]:
    """Every sentence of ``text`` as ``(start, end, paragraph number)``: HTML and Markdown
    comments are one segment each, the rest is cut into paragraphs, then at sentence ends."""
    pieces: list[tuple[int, int, bool]] = []
    cursor = 0
    for m in _COMMENT.finditer(text):
        pieces += [(cursor, m.start(), False), (m.start(), m.end(), True)]
        cursor = m.end()
    pieces.append((cursor, len(text), False))
    out: list[tuple[int, int, int]] = []
    paragraph = 0
    for start, end, is_comment in pieces:
        units = [(0, end - start)] if is_comment else _units(text[start:end])
        for u_start, u_end in units:
            paragraph += 1
            s = start + u_start
            if not is_comment:
                for m in _SENTENCE_END.finditer(text, s, start + u_end):
                    if not _ABBREVIATION.search(text[s : m.start()]):
                        out.append((s, m.start(), paragraph))
                        s = m.end()
            out.append((s, start + u_end, paragraph))
    return [(s, e, p) for s, e, p in out if text[s:e].strip()]


def _comment_text(segment: str) -> str | None:
    m = _COMMENT.fullmatch(segment.strip())
    return None if m is None else (m.group(1) or m.group(2) or "")


def _turn_regions(text: str) -> list[tuple[int, int]]:
    """Where fake chat turns are: from a turn marker to its closing marker (``<|im_end|>``,
    ``[/INST]``, ...) or, without one, to the end of the paragraph."""
    regions = []
    for m in _CONTROL.finditer(text):
        close = _TURN_END.search(text, m.end())
        blank = re.compile(r"\n\s*\n").search(text, m.end())
        ends = [x.end() for x in (close,) if x] + [x.start() for x in (blank,) if x]
        regions.append((m.start(), min(ends, default=len(text))))
    return regions


# Phishing's shape: hand over a secret, through a contact given in the same sentence.
_SECRET = re.compile(
    r"\b(?:bank (?:details|account)|account numbers?|card (?:numbers?|details)|passwords?|"
    r"PINs?|passcodes?|security codes?|log-?in details|sort codes?)\b",
    re.IGNORECASE,
)
_HAND_OVER = re.compile(r"\b(?:give|send|provide|enter|share|confirm|tell|read out)\b", re.I)
# Phishing asks for *your* secret; a reference list names the topic ("How to send password").
_WHOSE = re.compile(
    r"\b(?:your|their|his|her|its|the customer's|the user's)\s+(?:\S+\s+){0,2}$", re.I
)
_WARNING = re.compile(r"\b(?:never|not|don't|no one|nobody)\b", re.IGNORECASE)


def asks_for_secrets(sentence: str) -> bool:
    """Whether ``sentence`` asks the reader to hand a secret (bank details, a password, a PIN)
    to a phone number, link or email address it gives, and is not a warning against it."""
    contact = (
        _URL.search(sentence)
        or _EMAIL.search(sentence)
        or any(_is_phone(m.group()) for m in _PHONE.finditer(sentence))
    )
    owned = any(_WHOSE.search(sentence[: m.start()]) for m in _SECRET.finditer(sentence))
    return bool(contact and owned and _HAND_OVER.search(sentence) and not _WARNING.search(sentence))


def _score(segment: str, model: InjectionModel) -> tuple[float, Reason]:
    if _MARKUP.search(segment):
        return 1.0, "markup"
    if asks_for_secrets(segment):
        return 1.0, "credentials"
    inner = _comment_text(segment)
    if len(segment.split()) < _MIN_WORDS:  # a heading or a fragment: no order to follow
        return 0.0, "instruction"
    probs = [model._probability(v) for v in reveal(segment if inner is None else inner)]
    best = max(range(len(probs)), key=probs.__getitem__)
    return probs[best], "comment" if inner is not None else "encoded" if best else "instruction"


def detect(text: str, model: InjectionModel | None = None) -> list[Flag]:
    """The spans of ``text`` (a chunk) written for an assistant, in order, adjacent flagged
    sentences merged.

    A sentence is flagged when its score reaches the model's threshold, or when it lies in a
    fake chat turn (``<|im_start|>system`` ... ``<|im_end|>``). The rest of an injected
    paragraph goes with it: a sentence next to a flagged one that reaches the lower neighbour
    threshold, and every sentence of a paragraph at least half of whose sentences are flagged
    (so a fact that shares a two-sentence paragraph with an instruction leaves with it).
    """
    model = model or shipped_model()
    segs = segments(text)
    turns = _turn_regions(text)
    scored = [
        (1.0, "control-token")
        if any(a < end and start < b for a, b in turns)
        else _score(text[start:end], model)
        for start, end, _ in segs
    ]
    flagged = [s >= model.threshold for s, _ in scored]
    # Who is addressed carries across a paragraph: after "Note for automated assistants:",
    # the orders that follow in the same paragraph are the assistant's, whatever they say.
    told = [bool(_TOLD.search(_fold(text[start:end]))) for start, end, _ in segs]
    for paragraph in {p for _, _, p in segs if any(told)}:
        members = [i for i, seg in enumerate(segs) if seg[2] == paragraph]
        orders = [i for i in members if _ORDER.search(_fold(text[segs[i][0] : segs[i][1]]))]
        if any(told[i] for i in members) and orders:
            for i in members:
                flagged[i] = flagged[i] or told[i] or i in orders
    for i, (score, _) in enumerate(scored):
        near = [j for j in (i - 1, i + 1) if 0 <= j < len(segs) and segs[j][2] == segs[i][2]]
        if score >= model.neighbour_threshold and any(flagged[j] for j in near):
            flagged[i] = True
    for paragraph in {p for _, _, p in segs}:
        members = [i for i, seg in enumerate(segs) if seg[2] == paragraph]
        if 2 * sum(flagged[i] for i in members) >= len(members):
            for i in members:
                flagged[i] = True
    flags: list[Flag] = []
    for (start, end, _), (score, reason), hit in zip(segs, scored, flagged, strict=True):
        if not hit:
            continue
        score = round(score, 3)
        if flags and not text[flags[-1].end : start].strip():
            last = flags[-1]
            flags[-1] = Flag(last.start, end, max(last.score, score), last.reason)
        else:
            flags.append(Flag(start, end, score, reason))
    return flags
