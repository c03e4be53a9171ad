"""Normalisation of the person attributes that identity resolution compares.

Partner feeds write the same person's name, date of birth, nationality and sex in many
ways: ``MUHAMMAD IMRAN KHAN`` in payroll, ``Mohammed Imran Khan`` in contracts, ``محمد عمران
خان`` in the registry; ``Abdulaziz Bin Saleh Al-Harbi`` against ``Abdulaziz Saleh Alharbi``;
a Hijri birth date in one feed and a Gregorian one in another. The resolver can only
compare such values once they are brought into one canonical space, which is what this
module does. It runs on every record of every delivery (millions of rows), so everything
is precompiled at import, token-level work is memoised, and no per-call objects are built.

Names
-----
:func:`normalize_latin_name` maps a Latin-script name to a canonical string of tokens:

1. Unicode folding: NFKD, combining marks stripped, a few letters without decomposition
   (``ß ø æ ł ı …``) spelled out, lower case. Apostrophes and transliteration marks
   (``' ’ ʿ ʾ``) are *deleted* (``Sa'ad`` = ``Saad``, ``D'Souza`` = ``DSouza``); any other
   non-alphanumeric character (hyphen, dot, comma) separates tokens. Arabic letters found
   in a Latin field are romanised (:func:`arabic_to_latin`); other scripts are dropped.
2. Particles, in one left-to-right pass (see ``_pass``):

   * ``bin ibn bint bn binti binte bte`` ("son/daughter of") are dropped when a name
     follows them; they are optional in every source, so keeping them only adds noise.
     A final ``bin`` is kept: ``Li Bin`` is a Chinese given name, not a particle.
   * ``abd / abdul / abdel / abdal / abdur / …`` [+ article] + name are joined into one
     token ``abdul<name>`` (``Abd al-Rahman`` = ``Abdel Rahman`` = ``Abdulrahman``): the
     compound is one name whose word split is purely a transliteration habit.
     ``abu / abou`` + name is joined the same way (``Abu Bakr`` = ``Abubakr``).
   * the article ``al / el`` is joined to the next token (``Al-Harbi`` = ``El Harbi`` =
     ``Alharbi``), as are its sun-letter assimilations ``ar- as- at- az- ad- ash-`` when
     the next token starts with the assimilated consonant (``Ash-Shammari`` = ``Alshammari``).
   * the South-Asian infix articles ``ul ur us un uz ut ud`` are attached to the *previous*
     token (``Nur ul Islam`` = ``Nurul Islam``, ``Habib-ur-Rahman`` = ``Habibur Rahman``),
     the spelling those sources use when they join; ``ud/ed + din`` becomes ``uddin``.
   * Latin particles ``de del dela della delos delas van von da dos`` (followed by
     ``la los las le der den …``) are joined with the next token
     (``De La Cruz`` = ``Dela Cruz`` = ``DELACRUZ``).

3. Every token is folded (:func:`_fold_token`): first the curated table
   (:data:`~reconciler.identity.names_data.LATIN_VARIANTS`), then the generic spelling rules
   (``_gen``), then prefix decomposition (``al`` + known name, ``abdul`` + name).

The generic rules (``_gen``) only fold spelling variation that romanisation produces for
one and the same name; each is safe because the two spellings are never used to tell two
names apart in this population:

* ``ph`` → ``f``: no Arabic or South-Asian name distinguishes them (Mustapha / Mustafa).
* ``q`` → ``k`` (``que``/``qu`` before e, i → ``k``): ق and ك are romanised both ways
  (Qadir / Kader, Tariq / Tarik, Haque / Haq).
* ``oo``, ``ou`` → ``u``: English and French spellings of the long u (Noor / Nour / Nur,
  Youssef / Yusef).
* ``ee`` → ``i``: English spelling of the long i (Rasheed / Rashid, Uddeen / Uddin).
* ``ay`` before a consonant → ``ai`` (Faysal / Faisal, Zayd / Zaid).
* doubled letters are collapsed: Arabic gemination (shadda) is written or not at will
  (Hassan / Hasan, Muhammad / Muhamad); distinct names do not differ only by it here.
* final ``y`` after a consonant → ``i`` (Aly / Ali, Harby / Harbi, Fahmy / Fahmi).
* final ``h`` after a vowel is dropped: taa marbuta / final -ah is written both ways
  (Fatimah / Fatima, Aishah / Aisha, Sarah / Sara).

Vowel quality is *not* folded generically (``a/e/i/o/u`` are what tell Hassan from Hussain,
Salih from Salah, Omar from Ammar); those cases go through the curated table only.

Arabic script: :func:`normalize_arabic_name` is the orthographic normalisation usual in
Arabic information retrieval; :func:`arabic_to_latin` romanises into the Latin canonical
space (known names through a table, the rest letter by letter) so that the two scripts can
be compared with :func:`name_similarity`.

Dates, nationality, sex
-----------------------
:func:`parse_birth_date` accepts the contract's three forms (``YYYY-MM-DD``, ``YYYY``, Hijri
``HYYYY-MM-DD`` in the Umm al-Qura calendar) and raises :class:`DateFormatError` for
anything else; :func:`birth_date_agreement` grades two birth dates, knowing that
administrative default dates (1 January, …) carry only the year.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Final, Literal

from hijridate import Hijri
from rapidfuzz.distance import Indel

from reconciler.identity.names_data import (
    ALPHA2_TO_ISO3,
    ARABIC_NAMES,
    COMMON_TOKENS,
    COUNTRY_NAMES_TO_ISO3,
    ICAO_TO_ISO3,
    LATIN_VARIANTS,
    NON_NATIONAL_CODES,
)

__all__ = [
    "NON_NATIONAL_CODES",
    "BirthDate",
    "DateFormatError",
    "arabic_to_latin",
    "birth_date_agreement",
    "birth_dates_compatible",
    "name_key",
    "name_similarity",
    "name_tokens",
    "name_tokens_many",
    "normalize_arabic_name",
    "normalize_latin_name",
    "normalize_nationality",
    "normalize_sex",
    "parse_birth_date",
    "parse_date",
]

_VOWELS: Final = frozenset("aeiou")

# --------------------------------------------------------------------------------------
# Generic spelling folding
# --------------------------------------------------------------------------------------

_RE_QUE_END: Final = re.compile(r"que$")
_RE_QU_EI: Final = re.compile(r"qu(?=[ei])")
_RE_OU_OO: Final = re.compile(r"o[ou]")
_RE_AY_CONS: Final = re.compile(r"ay(?=[b-df-hj-np-tv-xz])")
_RE_DOUBLE: Final = re.compile(r"([a-z0-9])\1+")
_RE_FINAL_Y: Final = re.compile(r"(?<=[b-df-hj-np-tv-xz])y$")
_RE_FINAL_VOWEL_H: Final = re.compile(r"(?<=[a-z0-9][aeiou])h$")


def _gen(token: str) -> str:
    """Apply the generic spelling rules (module docstring) to one lower-case ASCII token.

    The order matters, and makes the function idempotent: the digraph substitutions
    first (``ee`` must be seen before doubles collapse), then the doubled-letter collapse
    (which also merges letters a substitution produced, ``oou`` → ``uu`` → ``u``), then the
    rules that must see the collapsed form (``ayyb`` → ``ayb`` → ``aib``; ``ahh`` → ``ah`` →
    ``a``).
    """
    if "ph" in token:
        token = token.replace("ph", "f")
    if "q" in token:
        token = _RE_QU_EI.sub("k", _RE_QUE_END.sub("k", token)).replace("q", "k")
    if "o" in token:
        token = _RE_OU_OO.sub("u", token)
    if "ee" in token:
        token = token.replace("ee", "i")
    token = _RE_DOUBLE.sub(r"\1", token)
    if "ay" in token:
        token = _RE_AY_CONS.sub("ai", token)
    if token.endswith("y"):
        token = _RE_FINAL_Y.sub("i", token)
    if token.endswith("h"):
        token = _RE_FINAL_VOWEL_H.sub("", token)
    return token


def _build_variant_tables(
    variants: dict[str, tuple[str, ...]],
) -> tuple[dict[str, str], dict[str, str]]:
    """Index the curated table by exact spelling and by generically folded spelling.

    Refuses (at import) a table in which one folded spelling would belong to two names:
    that would silently merge two different names, the error this module must not make.
    """
    exact: dict[str, str] = {}
    folded: dict[str, str] = {}
    for canonical, spellings in variants.items():
        for spelling in (canonical, *spellings):
            for table, key in ((exact, spelling), (folded, _gen(spelling))):
                other = table.setdefault(key, canonical)
                if other != canonical:
                    msg = f"name table conflict: {key!r} is both {other!r} and {canonical!r}"
                    raise ValueError(msg)
    return exact, folded


_EXACT, _FOLDED = _build_variant_tables(LATIN_VARIANTS)


def _known(text: str) -> str | None:
    """Canonical token when ``text`` is a spelling of a curated name, else ``None``."""
    hit = _EXACT.get(text)
    return hit if hit is not None else _FOLDED.get(_gen(text))


def _seam(prefix: str, rest: str) -> str:
    """``prefix + rest`` with a doubled letter at the seam collapsed.

    ``al`` + ``lami`` and the single token ``Allami`` must give the same result; the
    generic rules collapse the doubled ``l`` inside a token, so the join does too.
    """
    return prefix[:-1] + rest if rest.startswith(prefix[-1]) else prefix + rest


def _abd_rest(folded: str) -> str | None:
    """The name after an ``abd``-prefix in one token (``abdelaziz`` → ``aziz``), or None.

    Handles abdul-/abdel-/abdal- + name, assimilated articles already collapsed by
    ``_gen`` (``abdurrahman`` → ``abdurahman`` → ``rahman``), abd + name
    (``abdrahman``) and abdi-/abdu- + name (Somali ``abdirahman``). Tokens too short to be
    a compound (``abdi``, ``abdou``) are left alone.
    """
    s = folded[3:]
    if s[0] in _VOWELS:
        if s[1] == "l" and len(s) >= 5:
            return s[2:]
        if len(s) < 4:
            return None
        if _known(s[1:]) is not None:
            return s[1:]
        if _known(s) is not None:
            return s
        return s[1:] if s[0] in "uie" else s
    return s if len(s) >= 3 else None


def _fold_once(token: str) -> str:
    """One application of the token folding (table, generic rules, prefixes)."""
    hit = _EXACT.get(token)
    if hit is not None:
        return hit
    folded = _gen(token)
    hit = _FOLDED.get(folded)
    if hit is not None:
        return hit
    if len(folded) >= 6 and folded.startswith("abd"):
        rest = _abd_rest(folded)
        if rest is not None:
            core = _known(rest)
            return _seam("abdul", core if core is not None else _gen(rest))
    if len(folded) >= 6 and folded.startswith("abu"):
        core = _known(folded[3:])
        if core is not None:
            return _seam("abu", core)
    # Article glued to a *known* name: fold the name (``Alhussein`` = ``Al Hussain``).
    # Only for known names, so that ``Alina`` or ``Elena`` are never split; ``el`` only
    # before a consonant, so that ``Elias`` is not read as ``el`` + ``ias``.
    if len(folded) >= 5 and (
        folded.startswith("al") or (folded.startswith("el") and folded[2] not in _VOWELS)
    ):
        core = _known(folded[2:])
        if core is not None:
            return _seam("al", core)
    return folded


@lru_cache(maxsize=1 << 18)
def _fold_token(token: str) -> str:
    """Canonical form of one token; memoised (names repeat heavily across feeds).

    Iterated to a fixed point so that the function is idempotent by construction
    (``_fold_token(_fold_token(t)) == _fold_token(t)``), which the name-level
    idempotence relies on. In practice one or two rounds.
    """
    result = _fold_once(token)
    for _ in range(6):
        again = _fold_once(result)
        if again == result:
            break
        result = again
    return result


# --------------------------------------------------------------------------------------
# Particles and the name-level pass
# --------------------------------------------------------------------------------------

_DROP: Final = frozenset({"bin", "ibn", "bint", "bn", "binti", "binte", "bte", "ibnu"})
_ABD_FORMS: Final = frozenset({
    "abd", "abdul", "abdel", "abdal", "abdol", "abdil", "abdoul", "abdur", "abdus", "abdun",
    "abduz", "abdud", "abdut",
})
_ABU_FORMS: Final = frozenset({"abu", "abou"})
_AL_FORMS: Final = frozenset({"al", "el"})
#: Articles that may stand between ``abd``/``abu`` and the name (``Abd al-Aziz``).
_ARTICLES: Final = frozenset({
    "al", "el", "ul", "ur", "us", "un", "uz", "ud", "ut", "ar", "as", "ad", "at", "az", "an",
    "ash", "ush", "il",
})
#: Sun-letter forms of the article ``al`` -> the consonant they assimilate to.
_SUN_ARTICLES: Final = {"ar": "r", "as": "s", "at": "t", "az": "z", "ad": "d",
                        "ash": "sh", "ath": "th", "adh": "dh"}
_D_FORWARD: Final = frozenset({"ud", "ed"})
_DIN_FORMS: Final = frozenset({"din", "deen", "dine", "dien", "diin"})
_U_BACKWARD: Final = frozenset({"ul", "ur", "us", "un", "uz", "ut", "ush", "ud"})
#: Latin particles joined to the name after them (``De La Cruz`` -> ``delacruz``). Not
#: ``das``: the Portuguese particle (``Maria das Dores``) is rare among the workers this
#: serves, while Das is one of the commonest Indian and Bangladeshi family names — taken
#: for a particle it was dropped at the end of a name (``Vijai Das`` -> ``vijai``) and
#: glued to the next at the start (``Das Vijai`` -> ``dasvijai``), so a registry record
#: kept in the other name order stopped linking.
_LATIN_LEAD: Final = frozenset({
    "de", "del", "dela", "della", "delos", "delas", "van", "von", "da", "dos",
})
_LATIN_FOLLOW: Final = frozenset({
    "la", "las", "los", "le", "der", "den", "de", "da", "del", "di", "dos", "het", "lo",
})
#: Any token that can make the pass join or drop something.
_SPECIAL: Final = (
    _DROP | _ABD_FORMS | _ABU_FORMS | _AL_FORMS | frozenset(_SUN_ARTICLES) | _D_FORWARD
    | _U_BACKWARD | _LATIN_LEAD
)
#: Standalone tokens :func:`name_tokens` removes: particles left over at the end of a
#: (truncated) name, and honorifics that sources prepend inconsistently. A final ``bin``
#: stays: there it is a given name (``Li Bin``), not a particle.
_NOT_NAME: Final = (
    (_DROP - {"bin"}) | _AL_FORMS | _LATIN_LEAD | frozenset({"ul", "ur", "us", "ud"})
    | frozenset({"mr", "mrs", "ms", "miss", "dr", "eng", "engr"})
)


def _pass(tokens: list[str]) -> list[str]:
    """One left-to-right pass of particle handling and token folding (module docstring)."""
    out: list[str] = []
    raw: list[str] = []  # unfolded text of out[k], for backward joins
    n = len(tokens)
    i = 0
    while i < n:
        tok = tokens[i]
        if i + 1 < n and tok in _SPECIAL:
            nxt = tokens[i + 1]
            if tok in _DROP:
                i += 1
                continue
            end = -1  # index of the last token consumed by a forward join
            joined = ""
            if tok in _ABD_FORMS or tok in _ABU_FORMS:
                end = i + 2 if nxt in _ARTICLES and i + 2 < n else i + 1
                joined = "".join(tokens[i : end + 1])
            elif tok in _AL_FORMS:
                end, joined = i + 1, "al" + nxt
            elif tok in _D_FORWARD and nxt in _DIN_FORMS:
                end, joined = i + 1, tok + nxt
            elif tok in _SUN_ARTICLES and nxt.startswith(_SUN_ARTICLES[tok]):
                end, joined = i + 1, "al" + nxt
            elif tok in _U_BACKWARD and out:
                raw[-1] += tok
                out[-1] = _fold_token(raw[-1])
                i += 1
                continue
            elif tok in _LATIN_LEAD:
                end = i + 1
                while end < n - 1 and tokens[end] in _LATIN_FOLLOW:
                    end += 1
                joined = "".join(tokens[i : end + 1])
            if end >= 0:
                out.append(_fold_token(joined))
                raw.append(joined)
                i = end + 1
                continue
        out.append(_fold_token(tok))
        raw.append(tok)
        i += 1
    return out


def _canonical_tokens(tokens: list[str]) -> list[str]:
    """Run ``_pass`` to a fixed point.

    A second pass is needed only when the output still holds a particle (a join produced
    one, e.g. ``al`` + ``l`` → ``al``); each extra pass strictly shortens the list, so the
    loop ends, and the result is idempotent by construction.
    """
    out = _pass(tokens)
    while any(t in _SPECIAL for t in out):
        again = _pass(out)
        if again == out:
            break
        out = again
    return out


# --------------------------------------------------------------------------------------
# Latin names: text -> tokens
# --------------------------------------------------------------------------------------

#: Apostrophes and transliteration marks for ayn/hamza: deleted, not separators.
_APOSTROPHES: Final = dict.fromkeys(map(ord, "'’‘`´ʻʼʿʾ′ʹ"))
#: Latin letters that NFKD does not decompose.
_LATIN_EXTRA: Final = str.maketrans({
    "ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "ı": "i", "þ": "th",
    "ð": "d", "ħ": "h", "ŧ": "t", "ŋ": "n", "ĳ": "ij",
})
_RE_NON_ALNUM: Final = re.compile(r"[^a-z0-9]+")
_AR_CLASS: Final = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff"
_RE_HAS_ARABIC: Final = re.compile(f"[{_AR_CLASS}]")
_RE_ARABIC_RUN: Final = re.compile(f"[{_AR_CLASS}]+(?:\\s+[{_AR_CLASS}]+)*")


def _romanise_run(match: re.Match[str]) -> str:
    return f" {arabic_to_latin(match.group())} "


def _latin_raw_tokens(raw: str) -> list[str]:
    """Lower-case ASCII alphanumeric tokens of ``raw`` (step 1 of the module docstring)."""
    if raw.isascii():
        text = raw.lower().translate(_APOSTROPHES)
    else:
        text = raw
        if _RE_HAS_ARABIC.search(text):
            text = _RE_ARABIC_RUN.sub(_romanise_run, text)
        text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
        text = text.lower().translate(_LATIN_EXTRA)
    return _RE_NON_ALNUM.sub(" ", text).split()


@lru_cache(maxsize=1 << 16)
def _normalize_latin_cached(raw: str) -> str:
    return " ".join(_canonical_tokens(_latin_raw_tokens(raw)))


def normalize_latin_name(raw: str | None) -> str:
    """Canonical comparison form of a Latin-script name ("" for None or empty).

    Tokens stay in source order, separated by single spaces; the output contains only
    ``[a-z0-9 ]`` and is a fixed point (normalising it again changes nothing). See the
    module docstring for every rule applied and why it is safe.
    """
    if not raw or not isinstance(raw, str):  # a pandas NaN is "empty" too
        return ""
    return _normalize_latin_cached(raw)


def name_tokens(raw: str | None) -> tuple[str, ...]:
    """Tokens of :func:`normalize_latin_name` without leftover particles and honorifics."""
    return tuple(t for t in normalize_latin_name(raw).split() if t not in _NOT_NAME)


_RE_NON_ALNUM_LINES: Final = re.compile(r"[^a-z0-9\n]+")


def name_tokens_many(raws: list[str]) -> list[tuple[str, ...]]:
    """:func:`name_tokens` of many names at once (what a run of millions of records does):
    the ASCII names are lowered and split in one pass over their joined text, and each
    distinct token is folded once."""
    out: list[tuple[str, ...] | None] = [None] * len(raws)
    bulk = [k for k, raw in enumerate(raws) if raw and raw.isascii() and "\n" not in raw]
    text = "\n".join(raws[k] for k in bulk).lower().translate(_APOSTROPHES)
    lines = _RE_NON_ALNUM_LINES.sub(" ", text).split("\n") if bulk else []
    folds: dict[str, str | None] = {}
    for k, line in zip(bulk, lines, strict=True):
        tokens = line.split()
        if not _SPECIAL.isdisjoint(tokens):
            canonical = " ".join(_canonical_tokens(tokens)).split()
            out[k] = tuple(t for t in canonical if t not in _NOT_NAME)
            continue
        folded: list[str] = []
        for token in tokens:
            fold = folds.get(token, "")
            if fold == "":
                once = _fold_token(token)
                # a fold that is empty, holds a space or is a particle: the full path
                fold = folds[token] = (once if once and len(once.split()) == 1
                                       and once not in _SPECIAL else None)
            if fold is None:
                break
            folded.append(fold)
        else:
            out[k] = tuple(t for t in folded if t not in _NOT_NAME)
    return [name_tokens(raws[k]) if v is None else v for k, v in enumerate(out)]


# --------------------------------------------------------------------------------------
# Arabic script
# --------------------------------------------------------------------------------------


def _arabic_translation() -> dict[int, str | None]:
    """Translation table for :func:`normalize_arabic_name`.

    Diacritics (tashkeel, Quranic marks) and tatweel carry no identity and are written
    inconsistently, so they go. Hamza seats and alef variants are spelled both ways in
    registries, so they fold to the bare letter. Urdu / Persian letter shapes that are
    the same letter as an Arabic one fold to it (``ی`` = ``ي``); the letters Arabic lacks
    (``پ چ ژ گ``) are kept.
    """
    table: dict[int, str | None] = {}
    for lo, hi in ((0x0610, 0x061A), (0x064B, 0x065F), (0x06D6, 0x06ED)):
        for cp in range(lo, hi + 1):
            table[cp] = None
    table[0x0670] = None  # superscript alef
    table[0x0640] = None  # tatweel
    table[0x0621] = None  # standalone hamza
    letters = {
        "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ٲ": "ا", "ٳ": "ا",
        "ة": "ه", "ۃ": "ه", "ہ": "ه", "ھ": "ه", "ۀ": "ه",
        "ى": "ي", "ئ": "ي", "ی": "ي", "ے": "ي", "ۓ": "ي", "ێ": "ي",
        "ؤ": "و", "ۆ": "و", "ک": "ك", "ڪ": "ك", "ں": "ن", "ٹ": "ت", "ڈ": "د", "ڑ": "ر",
        "ڤ": "ف", "ڨ": "ق",
    }
    for src, dst in letters.items():
        table[ord(src)] = dst
    for base in (0x0660, 0x06F0):  # Arabic-Indic and Eastern Arabic-Indic digits
        for d in range(10):
            table[base + d] = str(d)
    return table


_AR_TRANSLATION: Final = _arabic_translation()
_AR_LETTERS: Final = "ابتثجحخدذرزسشصضطظعغفقكلمنهويپچژگ"
_RE_AR_JUNK: Final = re.compile(f"[^a-z0-9{_AR_LETTERS}]+")
_AR_DROP: Final = frozenset({"بن", "ابن", "بنت"})
_AR_JOIN_NEXT: Final = frozenset({"عبد", "ابو", "ال"})


def normalize_arabic_name(raw: str | None) -> str:
    """Orthographically normalised Arabic-script name ("" for None or empty).

    Diacritics and tatweel removed; alef forms → ``ا``; ``ة`` → ``ه``; ``ى``/``ئ`` → ``ي``;
    ``ؤ`` → ``و``; standalone ``ء`` dropped; Arabic-Indic digits → ASCII; ``بن``/``ابن``/
    ``بنت`` dropped before a name; ``عبد``/``ابو`` joined to the following name (with its
    article: ``عبد الله`` → ``عبدالله``); a detached ``ال`` re-attached. Latin letters are
    lower-cased and kept, anything else separates tokens. Idempotent.
    """
    if not raw or not isinstance(raw, str):  # a pandas NaN is "empty" too
        return ""
    text = raw if raw.isascii() else unicodedata.normalize("NFKC", raw)
    tokens = _RE_AR_JUNK.sub(" ", text.lower().translate(_AR_TRANSLATION)).split()
    out: list[str] = []
    n = len(tokens)
    i = 0
    while i < n:
        tok = tokens[i]
        if i + 1 < n:
            if tok in _AR_DROP:
                i += 1
                continue
            if tok in _AR_JOIN_NEXT:
                end = i + 2 if tokens[i + 1] == "ال" and i + 2 < n else i + 1
                out.append("".join(tokens[i : end + 1]))
                i = end + 1
                continue
        out.append(tok)
        i += 1
    return " ".join(out)


_AR_CONSONANTS: Final = {
    "ب": "b", "ت": "t", "ث": "th", "ج": "j", "ح": "h", "خ": "kh", "د": "d", "ذ": "dh",
    "ر": "r", "ز": "z", "س": "s", "ش": "sh", "ص": "s", "ض": "d", "ط": "t", "ظ": "z",
    "غ": "gh", "ف": "f", "ق": "q", "ك": "k", "ل": "l", "م": "m", "ن": "n", "پ": "p",
    "چ": "ch", "ژ": "zh", "گ": "g",
}
_AR_NAME_TABLE: Final = {
    normalize_arabic_name(arabic): latin for arabic, latin in ARABIC_NAMES.items()
}


def _romanise_letters(token: str) -> str:
    """Letter-by-letter romanisation of an Arabic token not in the name table.

    Short vowels are not written in Arabic, so this is necessarily rough: ``و``/``ي`` are
    read as vowels between consonants and as ``w``/``y`` at the start or next to a vowel;
    final ``ه`` after a consonant is the feminine ending ``-a``; ``ع`` is read as ``a``;
    and an ``a`` is inserted into a word-initial consonant cluster (``حربي`` → ``harbi``).
    """
    units: list[tuple[str, bool]] = []  # (text, is_vowel)
    last = len(token) - 1
    for idx, ch in enumerate(token):
        prev_vowel = units[-1][1] if units else True
        nxt = token[idx + 1] if idx < last else ""
        if ch == "ا":
            units.append(("a", True))
        elif ch == "ع":
            if not (units and prev_vowel):
                units.append(("a", True))
        elif ch == "و":
            units.append(("w", False) if prev_vowel or nxt == "ا" else ("u", True))
        elif ch == "ي":
            units.append(("y", False) if prev_vowel or nxt == "ا" else ("i", True))
        elif ch == "ه":
            units.append(("a", True) if idx == last and not prev_vowel else ("h", False))
        elif ch in _AR_CONSONANTS:
            units.append((_AR_CONSONANTS[ch], False))
        elif ch.isascii():
            units.append((ch, ch in _VOWELS))
    if len(units) >= 2 and not units[0][1] and not units[1][1]:
        units.insert(1, ("a", True))
    return "".join(text for text, _ in units)


@lru_cache(maxsize=1 << 16)
def _romanise_token(token: str) -> str:
    """Romanise one normalised Arabic token: table, then known prefixes, then letters."""
    if token.isascii():
        return token
    hit = _AR_NAME_TABLE.get(token)
    if hit is not None:
        return hit
    for prefix, latin in (("عبد", "abdul"), ("ابو", "abu")):
        if token.startswith(prefix) and len(token) > len(prefix):
            rest = token[len(prefix) :]
            if rest.startswith("ال") and len(rest) > 2:
                rest = rest[2:]
            return latin + _romanise_token(rest)
    if token.startswith("ال") and len(token) > 3:
        return "al" + _romanise_token(token[2:])
    return _romanise_letters(token)


def arabic_to_latin(raw: str | None) -> str:
    """Romanise an Arabic-script name into the canonical space of normalize_latin_name.

    Known names (:data:`~reconciler.identity.names_data.ARABIC_NAMES`) map straight to
    their Latin spelling, ``عبد``/``ابو``/``ال`` prefixes are romanised as ``abdul``/``abu``/
    ``al``, the rest letter by letter; the result then goes through
    :func:`normalize_latin_name`, so ``محمد عمران خان`` gives ``muhammad imran khan``.
    """
    norm = normalize_arabic_name(raw)
    if not norm:
        return ""
    return normalize_latin_name(" ".join(_romanise_token(t) for t in norm.split()))


# --------------------------------------------------------------------------------------
# Similarity and blocking
# --------------------------------------------------------------------------------------

#: Token pairs scoring below this are unrelated names, not typos; they earn nothing.
_TOKEN_FLOOR: Final = 0.6
#: An initial (``M``) against a token it abbreviates.
_INITIAL_SCORE: Final = 0.8
#: Per token of the longer name left unmatched (a dropped middle name), and its cap.
_EXTRA_TOKEN_PENALTY: Final = 0.02
_EXTRA_TOKEN_PENALTY_MAX: Final = 0.1
#: Factor when the shorter name is a single token and the longer one has tokens left
#: over: one shared token (``Khan``) is weak evidence.
_SINGLE_TOKEN_FACTOR: Final = 0.8
#: Above this many leftover tokens, skip the join/split candidates (cost is cubic).
_MAX_MERGE_TOKENS: Final = 6


@lru_cache(maxsize=1 << 18)
def _token_similarity(x: str, y: str) -> float:
    """Similarity of two tokens in [0, 1]; exactly symmetric (Indel works on integers).

    Indel (LCS) ratio rather than Jaro-Winkler: Jaro-Winkler scores short different names
    too high (Hassan/Hussain 0.86, Muhammad/Mahmud 0.88), Indel keeps them apart (0.77,
    0.57) while a one-letter typo in a name of 5+ letters stays at 0.8 or more. Scores
    under ``_TOKEN_FLOOR`` are 0: two unrelated names share letters by chance only.
    """
    if len(x) == 1 or len(y) == 1:
        short, long_ = (x, y) if len(x) == 1 else (y, x)
        return _INITIAL_SCORE if long_.startswith(short) and len(long_) > 1 else 0.0
    return Indel.normalized_similarity(x, y, score_cutoff=_TOKEN_FLOOR)


#: Two tokens whose lengths differ by more than this factor cannot reach ``_TOKEN_FLOOR``
#: (Indel ratio <= 2·min/(min+max)), so they are not compared at all.
_LENGTH_RATIO: Final = (2.0 - _TOKEN_FLOOR) / _TOKEN_FLOOR


def _merge_candidates(
    singles: list[str], pairs_from: list[str], single_is_short: bool,
) -> list[tuple[float, tuple[int, ...], tuple[int, ...]]]:
    """A token of one name against two tokens of the other written as one.

    Covers a name split in one source and joined in the other (``nasir uddin`` /
    ``nasiruddin``). Only joins that start with the single token's first letter are
    tried, and only when the lengths allow a match: unrelated names stay cheap. Scores
    are returned negated, like the candidates of ``_similarity_sorted``.
    """
    out: list[tuple[float, tuple[int, ...], tuple[int, ...]]] = []
    heads = [y[0] for y in pairs_from]
    for i, x in enumerate(singles):
        head = x[0]
        if head not in heads:
            continue
        len_x = len(x)
        for j, y1 in enumerate(pairs_from):
            if heads[j] != head:
                continue
            for k, y2 in enumerate(pairs_from):
                len_m = len(y1) + len(y2)
                if k == j or len_m > len_x * _LENGTH_RATIO or len_x > len_m * _LENGTH_RATIO:
                    continue
                score = _token_similarity(x, y1 + y2)
                if score > 0.0:
                    pair = (j, k) if j < k else (k, j)
                    out.append((-score, (i,), pair) if single_is_short else (-score, pair, (i,)))
    return out


@lru_cache(maxsize=1 << 16)
def _similarity_sorted(short: tuple[str, ...], long_: tuple[str, ...]) -> float:
    """Core of :func:`name_similarity` on canonically ordered, sorted token tuples."""
    rest_long = list(long_)
    rest_short: list[str] = []
    total = 0.0
    for tok in short:  # exact matches first: they are certain and the common case
        if tok in rest_long:
            rest_long.remove(tok)
            total += 1.0
        else:
            rest_short.append(tok)
    consumed_long = len(long_) - len(rest_long)
    if rest_short and rest_long:
        # candidates as (-score, short indexes, long indexes): a plain sort gives best
        # first with a deterministic tie-break, so the greedy assignment is reproducible.
        # (a flat comprehension: this loop is the hot spot of resolution, and the memoised
        # token similarity costs less than any Python-level pre-filter would)
        n_long = len(rest_long)
        sims = [_token_similarity(x, y) for x in rest_short for y in rest_long]
        cands: list[tuple[float, tuple[int, ...], tuple[int, ...]]] = [
            (-s, (k // n_long,), (k % n_long,)) for k, s in enumerate(sims) if s
        ]
        if len(rest_short) + len(rest_long) <= _MAX_MERGE_TOKENS:
            if len(rest_long) >= 2:
                cands += _merge_candidates(rest_short, rest_long, single_is_short=True)
            if len(rest_short) >= 2:
                cands += _merge_candidates(rest_long, rest_short, single_is_short=False)
        if cands:
            cands.sort()
            used_short: set[int] = set()
            used_long: set[int] = set()
            for neg, idx_short, idx_long in cands:
                if used_short.isdisjoint(idx_short) and used_long.isdisjoint(idx_long):
                    used_short.update(idx_short)
                    used_long.update(idx_long)
                    total -= neg * len(idx_short)
            consumed_long += len(used_long)
    score = total / len(short)
    extra = len(long_) - consumed_long
    if extra > 0:
        score *= 1.0 - min(_EXTRA_TOKEN_PENALTY * extra, _EXTRA_TOKEN_PENALTY_MAX)
    if len(short) == 1 and extra > 0:  # not when the one token matched a split name
        score *= _SINGLE_TOKEN_FACTOR
    return min(1.0, max(0.0, score))


def name_similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Similarity of two token tuples (from :func:`name_tokens`) in [0, 1].

    Tolerant of token order (tokens are sorted first), of a dropped middle name (scored
    over the shorter name, with a small penalty per unmatched token of the longer one),
    of a name split in one source and joined in the other, of initials, and of small typos
    (token pairs are matched greedily, best pair first, on the Indel ratio). A one-token
    name against a longer one is damped: one shared token is weak evidence. Exactly
    symmetric: the pair is put in a canonical order before scoring. Identical → 1.0,
    empty → 0.0.
    """
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    sa = tuple(sorted(a))
    sb = tuple(sorted(b))
    if sa == sb:
        return 1.0
    if (len(sa), sa) > (len(sb), sb):
        sa, sb = sb, sa
    return _similarity_sorted(sa, sb)


_SKELETON_MAP: Final = str.maketrans({"q": "k", "c": "k", "h": None, "w": None, "y": None,
                                      "a": None, "e": None, "i": None, "o": None, "u": None})
_SKELETON_LEN: Final = 5


@lru_cache(maxsize=1 << 16)
def _skeleton(token: str) -> str:
    """First letter (any vowel → ``a``) + consonant skeleton, for :func:`name_key`.

    The article is dropped (``alharbi`` → ``harbi``: sources add or omit it), vowels and
    ``h w y`` are dropped (they carry most romanisation variation), ``q``/``c`` → ``k``,
    doubled consonants collapsed, and the skeleton is capped so suffix variation
    (``-i``/``-y``/``-ee``) does not matter.
    """
    if len(token) > 4 and token.startswith("al") and token[2] not in _VOWELS:
        token = token[2:]
    head = "a" if token[0] in _VOWELS else token[0]
    body = _RE_DOUBLE.sub(r"\1", token[1:].translate(_SKELETON_MAP))
    return (head + body)[:_SKELETON_LEN]


def name_key(tokens: tuple[str, ...]) -> str:
    """Blocking key: sorted skeletons of the two most distinctive tokens ("" if none).

    "Distinctive" = not in :data:`~reconciler.identity.names_data.COMMON_TOKENS`, then
    longest, then alphabetical, so the choice does not depend on token order, and
    ``Muhammad``/``Khan`` (shared by thousands) do not make a key on their own when a rarer
    token exists. Skeletons (``_skeleton``) absorb vowel and spelling variation that survived
    normalisation. Not robust to a consonant typo in a chosen token or to one of the two
    chosen tokens being absent from the other record: use it with other blocking keys.
    """
    toks = {t for t in tokens if t and t not in _NOT_NAME}
    if not toks:
        return ""
    ranked = sorted(toks, key=lambda t: (t in COMMON_TOKENS, -len(t), t))
    return "-".join(sorted(_skeleton(t) for t in ranked[:2]))


# --------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------


class DateFormatError(ValueError):
    """A date cell that is not one of the accepted forms, or is not a real date."""


_DOB_FORMS: Final = "YYYY-MM-DD, YYYY, or an Umm al-Qura Hijri date HYYYY-MM-DD"
_MIN_BIRTH_YEAR: Final = 1900
#: Gregorian (month, day) pairs that registries use when the day is unknown: 1 January
#: (by far the most common: Afghan, Pakistani, Bangladeshi, Yemeni, Sudanese documents
#: issued without a birth record), 1 July (mid-year default of several civil registries)
#: and 31 December (end-of-year default).
_DEFAULT_DAYS: Final = frozenset({(1, 1), (7, 1), (12, 31)})


@dataclass(frozen=True, slots=True)
class BirthDate:
    """A date of birth, to the day or to the year only.

    ``defaulted`` marks a day-precision date known to be an administrative default that
    the Gregorian value cannot reveal: a Hijri 1 Muharram (``H1400-01-01``) becomes an
    ordinary-looking Gregorian date. It does not take part in equality.
    """

    year: int
    month: int | None
    day: int | None
    precision: Literal["day", "year"]
    defaulted: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.precision == "year":
            if self.month is not None or self.day is not None:
                raise DateFormatError("a year-precision birth date has no month or day")
            if not 1 <= self.year <= 9999:
                raise DateFormatError(f"year {self.year} out of range")
            return
        if self.month is None or self.day is None:
            raise DateFormatError("a day-precision birth date needs month and day")
        try:
            date(self.year, self.month, self.day)
        except ValueError as exc:
            raise DateFormatError(f"not a real date: {exc}") from None

    @property
    def is_low_information(self) -> bool:
        """Year-only, or a day that registries use as a default (``_DEFAULT_DAYS``).

        Such a day says nothing about the person, so a differing day on the other side
        is not a contradiction (:func:`birth_date_agreement` grades it ``year``).
        """
        return (
            self.precision == "year"
            or self.defaulted
            or (self.month, self.day) in _DEFAULT_DAYS
        )

    def iso(self) -> str:
        """``YYYY-MM-DD``, or ``YYYY`` for a year-only date."""
        if self.precision == "year":
            return f"{self.year:04d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    def as_date(self) -> date | None:
        """The Gregorian date, or None for a year-only date."""
        if self.month is None or self.day is None:
            return None
        return date(self.year, self.month, self.day)


_DIGITS: Final = {base + d: str(d) for base in (0x0660, 0x06F0) for d in range(10)}
_RE_YMD: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_RE_YEAR: Final = re.compile(r"[0-9]{4}")
_RE_HIJRI: Final = re.compile(r"[Hh]([0-9]{4})-([0-9]{2})-([0-9]{2})")


def _today() -> date:
    """Today's date (UTC): the upper bound for a date of birth."""
    return datetime.now(UTC).date()


def _checked_birth(day: date, raw: str) -> date:
    """Reject a birth date before 1900 or after today: not a working person's."""
    if day.year < _MIN_BIRTH_YEAR:
        raise DateFormatError(f"date_of_birth {raw!r} is before {_MIN_BIRTH_YEAR}")
    if day > _today():
        raise DateFormatError(f"date_of_birth {raw!r} is in the future")
    return day


def parse_birth_date(raw: str | None) -> BirthDate | None:
    """Parse a ``date_of_birth`` cell (None for an empty cell).

    Accepts ``YYYY-MM-DD``, ``YYYY`` (year-only), and Hijri ``HYYYY-MM-DD`` (Umm al-Qura,
    converted with ``hijridate``: ``H1407-07-14`` → 1987-03-14, day precision; 1 Muharram
    is flagged ``defaulted``). Arabic-Indic digits are accepted. Raises
    :class:`DateFormatError` for an unknown form, an impossible date (2023-02-30, month
    13, a Hijri day 30 in a 29-day month, a Hijri year outside hijridate's table), or a
    date before 1900 or after today.
    """
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise DateFormatError(f"date_of_birth {raw!r} is not text; expected {_DOB_FORMS}")
    text = raw.strip()
    if not text:
        return None
    if not text.isascii():
        text = text.translate(_DIGITS)
    if m := _RE_YMD.fullmatch(text):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
        try:
            day = date(y, mo, d)
        except ValueError as exc:
            msg = f"date_of_birth {raw!r} is not a real date ({exc}); expected {_DOB_FORMS}"
            raise DateFormatError(msg) from None
        _checked_birth(day, raw)
        return BirthDate(y, mo, d, "day")
    if _RE_YEAR.fullmatch(text):
        year = int(text)
        if not _MIN_BIRTH_YEAR <= year <= _today().year:
            msg = f"date_of_birth {raw!r}: year outside {_MIN_BIRTH_YEAR}..today"
            raise DateFormatError(msg)
        return BirthDate(year, None, None, "year")
    if m := _RE_HIJRI.fullmatch(text):
        hy, hm, hd = int(m[1]), int(m[2]), int(m[3])
        try:
            greg = Hijri(hy, hm, hd).to_gregorian()
        except (ValueError, OverflowError, IndexError) as exc:
            msg = (
                f"date_of_birth {raw!r} is not a valid Umm al-Qura date ({exc}); "
                f"expected {_DOB_FORMS}"
            )
            raise DateFormatError(msg) from None
        day = _checked_birth(date(greg.year, greg.month, greg.day), raw)
        return BirthDate(day.year, day.month, day.day, "day", defaulted=(hm, hd) == (1, 1))
    raise DateFormatError(f"date_of_birth {raw!r} is not a date; expected {_DOB_FORMS}")


def parse_date(raw: str | None) -> date | None:
    """Strict ``YYYY-MM-DD`` (start_date, end_date, issue_date, …); None for empty.

    Raises :class:`DateFormatError` for any other form or an impossible date: these
    columns have no year-only or Hijri variant in the contract.
    """
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise DateFormatError(f"date {raw!r} is not text; expected YYYY-MM-DD")
    text = raw.strip()
    if not text:
        return None
    m = _RE_YMD.fullmatch(text)
    if m is None:
        raise DateFormatError(f"date {raw!r} is not in the accepted form YYYY-MM-DD")
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError as exc:
        raise DateFormatError(f"date {raw!r} is not a real date ({exc})") from None


Agreement = Literal["exact", "swapped", "year", "mismatch", "unknown"]


def birth_date_agreement(a: BirthDate | None, b: BirthDate | None) -> Agreement:
    """Grade two birth dates.

    ``unknown``: either is missing. ``exact``: same full date. ``swapped``: same year, day
    and month transposed (a US/ISO data-entry slip; only possible when both readings are
    real dates). ``year``: same year, and either side is year-only, or the days differ
    while one side is a low-information default (:attr:`BirthDate.is_low_information`).
    ``mismatch``: anything else. Symmetric.
    """
    if a is None or b is None:
        return "unknown"
    if a.year != b.year:
        return "mismatch"
    if a.precision == "year" or b.precision == "year":
        return "year"
    if a.month == b.month and a.day == b.day:
        return "exact"
    if a.month == b.day and a.day == b.month:
        return "swapped"
    if a.is_low_information or b.is_low_information:
        return "year"
    return "mismatch"


def birth_dates_compatible(a: BirthDate | None, b: BirthDate | None) -> bool:
    """True unless the two birth dates contradict each other.

    ``swapped`` counts as compatible: a transposed day/month is a common entry error and
    must not block a link that identifiers and names support; it is not *agreement*
    either, so scorers should weight it below ``exact`` (use :func:`birth_date_agreement`).
    """
    return birth_date_agreement(a, b) != "mismatch"


# --------------------------------------------------------------------------------------
# Nationality and sex
# --------------------------------------------------------------------------------------

_RE_NAT_JUNK: Final = re.compile(r"[^A-Z0-9]+")


def normalize_nationality(raw: str | None) -> str | None:
    """ISO 3166-1 alpha-3 (upper case) for a nationality cell; None when empty.

    ICAO Doc 9303 passport codes that stand for an ISO country are mapped (``D`` → ``DEU``,
    ``GBD/GBN/GBO/GBP/GBS`` → ``GBR``, ``RKS`` → ``XKX``). UN travel documents (``UNA``,
    ``UNK``, ``UNO``) and the stateless/refugee codes (``XXA XXB XXC XXX``) are kept as
    written: they name an issuer or a status, not a country, and are listed in
    :data:`NON_NATIONAL_CODES` so callers can treat them as "no nationality information".
    Common alpha-2 codes (and ``UK``, ``KSA``, ``UAE``) and English country names or
    demonyms of the partner countries are mapped. MRZ fillers (``<``) and dots are ignored.
    Never raises: anything else is returned cleaned and upper-cased.
    """
    if not isinstance(raw, str):
        return None
    text = " ".join(_RE_NAT_JUNK.sub(" ", raw.replace(".", "").upper()).split())
    if not text:
        return None
    for table in (ICAO_TO_ISO3, ALPHA2_TO_ISO3, COUNTRY_NAMES_TO_ISO3):
        hit = table.get(text)
        if hit is not None:
            return hit
    return text


_SEX: Final = {
    "m": "M", "male": "M", "man": "M", "1": "M", "ذكر": "M",
    "f": "F", "female": "F", "woman": "F", "2": "F", "انثي": "F", "انثى": "F", "أنثى": "F",
    "أنثي": "F", "إنثى": "F", "آنثى": "F",
}


def normalize_sex(raw: str | None) -> str | None:
    """``"M"`` / ``"F"`` from m/male/man, f/female/woman, ``ذكر``/``أنثى``, or the ISO/IEC
    5218 codes 1/2; None for anything else (``0``/``9``/``X``/unknown carry no sex).
    """
    if not isinstance(raw, str):
        return None
    return _SEX.get(raw.strip().casefold())

