"""Personal names the small NER model misses or mislabels (issue 11).

spaCy's `en_core_web_sm` labels many unfamiliar names ORG, PRODUCT or GPE,
misses first names alone ("Thanks Priya"), lower-case and ALL-CAPS names,
"Surname, Given" and names in other scripts ("张伟"). This layer adds PERSON
findings from evidence NER does not use:

- context cues: honorifics (the honorific joins the span: "Dr." is labelled
  TITLE by the evaluator), salutations and signatures, role words
  ("Customer", "Passenger"), verbs ("called", "wrote", "spoke with"), field
  labels ("Name:"), @mentions and chat speaker labels ("[Priya]", "Wei:");
- a given-name/surname lexicon from names-dataset (data/names.tsv.gz, 105
  countries; not Faker, which generates our test data): a known given name
  followed by a known surname, in any case, and "Surname, Given";
- e-mail addresses built from a name (`p.raman@` confirms "Priya Raman");
- words in a non-Latin script inside Latin-script text (names and places);
- NER spans of another label whose words are all known names are re-typed PERSON;
- job titles (TITLE): a capitalised phrase ending in an occupation word.

Only PERSON findings are added, and never a value that never reaches a vendor
more than once: the decide stage merges overlapping spans.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from gateway.detection.finding import Finding

DATA = Path(__file__).with_name("data") / "names.tsv.gz"
RECOGNIZER = "names"
GIVEN_TOP = 2000      # a given name ranked within the top N of some country
SURNAME_TOP = 3000
STRONG_GIVEN = 400    # lower-case pairs and lone names need a common given name
CUE_SCORE = 0.7
PAIR_SCORE = 0.65
EMAIL_SCORE = 0.7
SCRIPT_SCORE = 0.5
RETYPE_SCORE = 0.8
SINGLE_GIVEN = 300    # a lone capitalised word is a name when it ranks this high as a given name somewhere
SINGLE_SCORE = 0.55

_NON_LATIN = (r"\u3005-\u3007\u0370-\u03ff\u0400-\u052f\u0590-\u05ff\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\u0900-\u0dff"
              r"\u0e00-\u0e7f\u10a0-\u10ff\u1100-\u11ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
              r"\ufb50-\ufdff\ufe70-\ufeff")
NON_LATIN_WORD = re.compile(f"[{_NON_LATIN}]+(?:[-'’][{_NON_LATIN}]+)*")
# A word: letters with inner apostrophes/hyphens (O'Brien, Amy-leigh); an initial is "A" or "A.".
WORD = re.compile(r"[^\W\d_]+(?:(?:['’](?![sS](?![^\W\d_]))|-)[^\W\d_]+)*")  # "Raman's" -> "Raman"
PARTICLES = frozenset({"van", "von", "de", "der", "den", "da", "das", "dos", "do", "di", "du", "del", "della", "la",
                       "le", "ter", "ten", "bin", "binti", "bint", "ibn", "al", "el", "ben", "y", "mac", "st"})

# Capitalised words that are names in some country but are, in English text, ordinary words.
COMMON = frozenset("""
a an the and or but if of in on at to for from with by as is are was were be been am i me my we us our you your
he him his she her they them their it its this that these those there here what who whom which when where why how
hi hello hey dear thanks thank cheers regards best kind sincerely yours warm warmly greetings welcome sorry please
good morning afternoon evening night today tomorrow yesterday week month year day time date
monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
september october november december jan feb mar apr jun jul aug sep sept oct nov dec
customer client patient user employee contact passenger caller member applicant candidate tenant guest student
agent support team manager admin administrator staff service services sales billing account accounts order orders
invoice invoices ticket tickets issue issues refund payment card plan product products subscription
name email phone mobile address subject re fwd fw cc bcc attn note notes meeting reminder escalation lead chat
transcript message reply update status new old hr it ceo cfo cto vp dept department office company inc ltd llc
corp co group bank fund university school hospital city state county street road avenue north south east west
will may can could would should might must shall grant mark bill rose page long king young chase hope joy faith
grace summer winter spring autumn fall art ray dean guy pat rich sky rock stone wood hall hill field brown white
black green gray grey gold silver bell ford cook baker love sun star moon river lake park bay cross
justice major general page case price rice bond cash sharp wise strong little small big great main head
us usa uk eu un api url ip id ok yes no not all any some one two three four five first last next more most
just also only very well then than so too such much many other same own about after before over under up down
out off again once here now ever never always still yet because while during without within between through
said says say told asked called wrote sent got get see saw look let make made take took give gave go went come came
apt suite unit floor po box mr mrs ms miss dr prof sir madam mx
per key farewell baby princess prince royal chrome mission fuse pt german english french happy
cardholder holder visitor volunteer attacker background intro config todo rsvp nda iban swift bic visa amex
mastercard firefox safari
""".split())

# NER DATE spans that are no date: a duration or frequency ("40 minutes", "3x/week"), or digit
# groups that are no valid day ("order 1009-22-1187").
_DURATION = re.compile(r"(?i)(?:about |around |~)?\d+(?:\.\d+)?[ \t]*(?:x[ \t]*/[ \t]*|times?[ \t]+(?:a|per)[ \t]+)?"
                       r"(?:ms|milliseconds?|s|secs?|seconds?|mins?|minutes?|hrs?|hours?|days?|weeks?|wk|months?)")
_DIGIT_GROUPS = re.compile(r"(\d{1,4})[-/.](\d{1,4})[-/.](\d{1,4})")


def _could_be_a_date(value: str) -> bool:
    value = value.strip()
    if _DURATION.fullmatch(value):
        return False
    m = _DIGIT_GROUPS.fullmatch(value)
    if m is None:
        return True
    a, b, c = (int(g) for g in m.groups())
    day_month = (1 <= a <= 31 and 1 <= b <= 12) or (1 <= a <= 12 and 1 <= b <= 31)
    if len(m.group(1)) == 4:
        return 1 <= b <= 12 and 1 <= c <= 31
    return day_month and (len(m.group(3)) in (2, 4))


_NOT_A_NAME = re.compile(r"[_=@#\\{}<>|]")
# Words NER takes into a person's span from the context in front of the name.
CUE_WORDS = frozenset("""
hi hello hey dear thanks thank cheers customer client patient user employee contact passenger caller member
applicant candidate tenant guest student agent cardholder holder visitor volunteer reporter requester assignee
owner attn cc name
""".split())

HONORIFIC = (r"(?:Mr|Mrs|Ms|Mx|Miss|Mister|Dr|Doctor|Prof|Professor|Sir|Dame|Madam|Madame|Mme|Mlle|Herr|Frau|Sr|Sra|"
             r"Srta|Sgt|Capt|Rev|Fr|Hon|Lord|Lady)")
_HONORIFIC_BEFORE = re.compile(HONORIFIC + r"\.?[ \t]+$")

# Cues after which the next name-like words are a person. Strong: any capitalised word;
# weak: the words must include a known name (or be in another script).
HONORIFIC_CUE = re.compile(r"\b(?:" + HONORIFIC + r"(?:\.|(?![\w.]))[ \t]*)+", re.IGNORECASE)
# Salutations: the name after them may be written in lower case ("hi priya").
SALUTATION = re.compile(
    r"\b(?:hi|hello|hey|dear|thanks|thank you|thx|thnx|ty|cheers|sorry|congrats|congratulations|welcome|good morning|"
    r"good afternoon|greetings|bye|goodbye)\b,?[ \t]*", re.IGNORECASE)
STRONG_CUES = re.compile(
    r"(?:\b(?:my name is|name is|i am|i'm|this is|named|called|signed for by|signed by|"
    r"spoke with|spoke to|talked to|talked with|met with|emailed|texted|phoned|wrote to|calls me|call me|"
    r"named (?:him|her|them)|(?:user|name|customer|passenger|patient|client)[ \t]*:)"
    r"|(?im:^[ \t]*(?:name|full name|customer|customer name|contact|contact name|client|patient|passenger|"
    r"employee|user|caller|from|to|cc|attn|attention|requester|reporter|assignee|owner|signed)[ \t]*:)"
    r"|\b(?:attn|attention|cc)\b[:\-]?"
    r"|\b(?:customer|client|patient|passenger|caller|applicant|candidate|tenant|guest|lead|contact)\b[:,]?(?=[ \t]+\S)"
    r"|(?<![\w@.])@(?=[^\W\d_]))[ \t]*",
    re.IGNORECASE)
WEAK_CUES = re.compile(
    r"\b(?:customer|client|patient|passenger|caller|employee|contact|applicant|candidate|tenant|guest|member|"
    r"user|per|from|with|by|for|to|and|wrote|called|said|says|asked|told|thanked|according to|cc|"
    r"reply to|contact|forward this to|on behalf of|approved by|reported by|requested by|signed by|"
    r"submitted by|reviewed by|raised by|opened by|assigned to|escalated to|handled by|directed by|written by)\b[,:]?[ \t]*",
    re.IGNORECASE)
# A hand-off followed by a pronoun: whoever it names is a person, in any case and
# however rare the name ("please forward this to enzio moresi, she handles ...").
HANDOFF = re.compile(
    r"(?i)\b(?:forward(?:ed)?(?: (?:this|it))? to|assign(?:ed)?(?: (?:this|it))? to|escalated?(?: (?:this|it))? to|"
    r"hand(?:ed)?(?: (?:this|it))?(?: over)? to|reply to|cc)[ \t]+"
    r"(?P<who>[^\W\d_]+(?:[-'’][^\W\d_]+)*(?:[ \t]+[^\W\d_]+(?:[-'’][^\W\d_]+)*){0,2}),[ \t]+(?:she|he)\b")
SIGNATURE = re.compile(
    r"(?im)^[ \t]*(?:regards|best regards|kind regards|warm regards|best|thanks|many thanks|thank you|cheers|"
    r"sincerely|yours sincerely|yours truly|yours|warmly|all the best|talk soon|signed)[ \t]*[,!.]?[ \t]*\r?\n"
    r"[ \t]*")
SPEAKER = re.compile(r"(?m)^[ \t]*(?:\[(?P<b>[^\]\n]{1,60})\]|(?P<c>[^\W\d_][^:\n]{0,40}?)[ \t]*:)")
SPEAKER_LABELS = frozenset({"agent", "user", "customer", "support", "bot", "system", "assistant", "operator",
                            "subject", "from", "to", "cc", "bcc", "date", "sent", "name", "email", "phone", "mobile",
                            "address", "note", "notes", "issue", "lead", "re", "ticket", "status", "priority",
                            "reminder", "escalation", "meeting notes", "hr note", "agent note", "question", "answer",
                            "q", "a", "tel", "fax", "company", "title", "position", "role", "department", "dob",
                            "ssn", "account", "order", "reason", "summary", "description", "result", "error",
                            "warning", "info", "debug", "update", "personal info", "url", "ip", "host", "id"})
ORG_WORDS = frozenset({"inc", "ltd", "llc", "plc", "corp", "corporation", "co", "company", "group", "holdings",
                       "bank", "fund", "trust", "etf", "sa", "ag", "nv", "bv", "gmbh", "spa", "asa", "ab", "oy",
                       "limited", "partners", "capital", "technologies", "technology", "systems", "solutions",
                       "university", "college", "school", "institute", "hospital", "foundation", "association",
                       "society", "club", "labs", "pharma", "pharmaceuticals", "energy", "industries", "services",
                       "international", "global", "media", "bancorp", "insurance", "acquisition", "therapeutics",
                       "city", "county", "state", "republic", "kingdom", "street", "road", "avenue"})
_LOCAL_SPLIT = re.compile(r"[._\-+0-9]+")
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")

# Common Chinese and Korean family names (a run of 2-4 Han or Hangul characters beginning with one is a name).
CJK_SURNAMES = frozenset("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
                         "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
                         "김이박최정강조윤장임한오서신권황안송류전홍고문양손배백허유남심노하곽성차주우구민진나지엄변채원천방공현함염여추도소석선설마길연위표명기반왕금옥육인맹제모탁국어은편용")


@lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """Case- and accent-insensitive form for lexicon look-ups."""
    if word.isascii():
        return word.lower()
    word = word.replace("’", "'").casefold()
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class Lexicon:
    """Given names and surnames with their best per-country rank (lower is more common)."""

    def __init__(self, path: Path = DATA, given_top: int = GIVEN_TOP, surname_top: int = SURNAME_TOP) -> None:
        self.given: dict[str, int] = {}
        self.surname: dict[str, int] = {}
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.startswith("#"):
                    continue
                kind, name, rank = line.rstrip("\n").split("\t")
                r = int(rank)
                table, top = (self.given, given_top) if kind == "F" else (self.surname, surname_top)
                key = fold(name)
                if r <= top and (key not in table or r < table[key]):
                    table[key] = r

    def given_rank(self, word: str) -> int | None:
        return self.given.get(fold(word))

    def surname_rank(self, word: str) -> int | None:
        return self.surname.get(fold(word))

    def known(self, word: str) -> bool:
        key = fold(word)
        return (key in self.given or key in self.surname) and key not in COMMON


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    return Lexicon()


PUBLIC_ORGS = Path(__file__).with_name("data") / "public_orgs.txt"


@lru_cache(maxsize=1)
def _public_orgs() -> frozenset[str]:
    lines = PUBLIC_ORGS.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().casefold() for line in lines if line.strip() and not line.startswith("#"))


_NOT_ORG = re.compile(r"[\w\-]+[._/][\w.\-/]*")
_LOWER_WORD = re.compile(r"[a-z][a-z\-]*")


def public_org(value: str) -> bool:
    """An organisation name that tells a vendor nothing about anyone (data/public_orgs.txt), or not a
    name at all: one lower-case word ("sec") or a file/identifier ("batch.jsonl") that NER labelled ORG."""
    if _NOT_ORG.fullmatch(value.strip()):
        return True
    if _LOWER_WORD.fullmatch(value.strip()) and not lexicon().known(value.strip()):
        return True
    value = value.strip(" \t\n,.;:'\"()").casefold()
    if value.startswith("the "):
        value = value[4:]
    return value in _public_orgs()


def _is_cap(word: str) -> bool:
    return word[:1].isupper() and fold(word) not in COMMON


def _non_latin(word: str) -> bool:
    return NON_LATIN_WORD.fullmatch(word) is not None


# Occupations: the head noun of a job title ("Community supervision officer", "Machine operator").
JOB_HEADS = frozenset("""
manager engineer specialist technician officer assistant worker operator designer architect planner surveyor
escort buyer repairer clerk analyst developer consultant director nurse teacher lecturer professor scientist
researcher administrator coordinator supervisor accountant auditor lawyer solicitor attorney paralegal pharmacist
physician surgeon therapist counsellor counselor psychologist dentist hygienist midwife paramedic firefighter editor
writer journalist reporter photographer producer artist illustrator animator chef cook waiter bartender cashier
receptionist secretary treasurer salesperson representative broker underwriter adjuster inspector examiner
investigator mechanic electrician plumber carpenter welder machinist fitter driver pilot controller dispatcher
librarian archivist curator translator interpreter programmer tester strategist executive president chairman
chairperson intern trainee apprentice labourer laborer handler expert advisor adviser instructor trainer coach
scheduler estimator farmer gardener landscaper cleaner housekeeper caretaker guard attendant steward conductor teller
banker economist statistician actuary geologist chemist physicist biologist ecologist botanist zoologist veterinarian
radiographer optometrist optician podiatrist dietitian nutritionist sonographer embryologist geneticist astronomer
meteorologist oceanographer cartographer hydrologist conservator sculptor musician composer dancer choreographer
actor presenter broadcaster announcer programmer installer loader sorter packer picker assembler fabricator
offbearer tender setter cutter finisher polisher grinder roofer glazier plasterer mason bricklayer painter
""".split())
_JOB_SINGLE = re.compile(r"(?:\b(?:as an?|as|the|our|new|former)[ \t]+|(?m:^[ \t]*))([A-Z][a-z]+)(?=[ \t]*(?:,|\n|$))")
TITLE_SCORE = 0.6
_SURNAME_LINE = re.compile(r"(?m)^[ \t]*([^\W\d_][^\W\d_'’\-]+), ([^\W\d_][^\W\d_'’\-]+)[ \t]*$")


def _words(text: str, words: list[re.Match[str]] | None) -> list[re.Match[str]]:
    return list(WORD.finditer(text)) if words is None else words


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"  # what `\w` matches in a str pattern


def _whole_word_occurrences(text: str, words: set[str]) -> list[tuple[int, int]]:
    """Where `words` occur with no word character on either side, left to right, the longest
    at each start, none overlapping: what the alternation `(?<!\w)(?:longest|...|shortest)(?!\w)`
    finds, without compiling a regex per text."""
    hits = []
    n = len(text)
    for word in words:
        at = text.find(word)
        while at != -1:
            end = at + len(word)
            if not (at and _is_word_char(text[at - 1])) and not (end < n and _is_word_char(text[end])):
                hits.append((at, -end))
            at = text.find(word, at + 1)
    out: list[tuple[int, int]] = []
    last = 0
    for at, neg_end in sorted(hits):
        if at >= last:
            out.append((at, -neg_end))
            last = -neg_end
    return out


def _outermost(found: list[Finding]) -> list[Finding]:
    """One finding per PERSON/TITLE span: a span inside another of the same type adds nothing
    (decide would merge them anyway) and only clutters findings and explanations."""
    ordered = sorted(found, key=lambda f: (f.start, -f.end, -f.score))
    kept: list[Finding] = []
    outer: dict[str, tuple[int, int]] = {}
    for f in ordered:
        if f.entity_type in ("PERSON", "TITLE"):
            span = outer.get(f.entity_type)
            if span and span[0] <= f.start and f.end <= span[1]:
                continue
            outer[f.entity_type] = (f.start, f.end)
        kept.append(f)
    return kept


class NameFinder:
    """PERSON findings from cues, the lexicon, e-mail addresses and scripts; NER spans re-typed."""

    def __init__(self, lex: Lexicon | None = None) -> None:
        self.lex = lex or lexicon()

    # --- helpers ---------------------------------------------------------
    def _run(self, text: str, pos: int, strong: bool, max_words: int = 3, lower_ok: bool = False):
        """The name words starting at `pos`: (start, end, known) or None. Words are capitalised,
        initials, particles between words, or words in a non-Latin script; lower-case words only
        when `lower_ok` and known to the lexicon."""
        words: list[tuple[int, int]] = []
        known = script = False
        i = pos
        n = len(text)
        while len(words) < max_words + 1 and i < n:
            m = WORD.match(text, i)
            if m is None:
                break
            w = m.group()
            end = m.end()
            if _non_latin(w):
                script = True
            elif len(w) == 1 and w.isupper():
                if end < n and text[end] == ".":
                    end += 1
            elif fold(w) in PARTICLES and words:
                pass
            elif (strong and not words and w[:1].isupper() and not w.isupper()
                  and (self.lex.given.get(fold(w)) or STRONG_GIVEN + 1) <= STRONG_GIVEN):
                known = True  # right after a strong cue, a common given name that is also a word ("Spoke with Jun")
            elif (_is_cap(w) and not (words and text[words[-1][0]:words[-1][1]].islower())) or (
                    lower_ok and w.islower() and fold(w) not in COMMON and (self.lex.known(w) or words)
                    and all(text[a:b].islower() for a, b in words)):
                if w.isupper() and len(w) > 1 and (len(w) <= 4 or not self.lex.known(w)) and not strong:
                    break
                known = known or self.lex.known(w)
            else:
                break
            words.append((m.start(), end))
            i = end
            j = i
            while j < n and j - i < 3 and text[j] in " \t":
                j += 1
            if j > i and j < n and text[j] != "\n":
                i = j
            else:
                break
        while words and fold(text[words[-1][0]:words[-1][1]]) in PARTICLES:
            words.pop()
        if not words or len(words) > max_words + 1:
            return None
        words = words[:max_words + 1]
        start, end = words[0][0], words[-1][1]
        if end - start == 1 or (not strong and not (known or script)):
            return None
        if text[start:end].islower():
            # lower case: known names ("priya raman"), a common given name and another word, or one
            # common given name after a salutation
            values = [text[a:b] for a, b in words]
            common_given = (self.lex.given_rank(values[0]) or STRONG_GIVEN + 1) <= STRONG_GIVEN
            if len(words) == 1 and not (strong and common_given):
                return None
            if len(words) > 1 and not (common_given or all(self.lex.known(v) for v in values)):
                return None
        return start, end, known or script

    def _finding(self, start: int, end: int, score: float, why: str) -> Finding:
        return Finding("PERSON", start, end, score, RECOGNIZER, explanation=f"{RECOGNIZER}: {why}; score {score:.2f}")

    # --- evidence --------------------------------------------------------
    def cues(self, text: str) -> list[Finding]:
        out = []
        for m in HONORIFIC_CUE.finditer(text):
            run = self._run(text, m.end(), strong=True)
            if run:
                out.append(self._finding(m.start(), run[1], CUE_SCORE, "after an honorific"))
        for m in SALUTATION.finditer(text):
            run = self._run(text, m.end(), strong=True, lower_ok=True)
            if run:
                out.append(self._finding(run[0], run[1], CUE_SCORE, "after a salutation"))
        for m in STRONG_CUES.finditer(text):
            run = self._run(text, m.end(), strong=True, lower_ok=True)
            if run:
                out.append(self._finding(run[0], run[1], CUE_SCORE, "after a person cue"))
        for m in WEAK_CUES.finditer(text):
            run = self._run(text, m.end(), strong=False, lower_ok=True)
            if run:
                out.append(self._finding(run[0], run[1], PAIR_SCORE, "known name after a context word"))
        for m in HANDOFF.finditer(text):
            words = m.group("who").split()
            if not any(fold(w) in COMMON or fold(w) in ORG_WORDS or fold(w) in JOB_HEADS for w in words):
                out.append(self._finding(m.start("who"), m.end("who"), CUE_SCORE, "handed to someone called she/he"))
        for m in SIGNATURE.finditer(text):
            run = self._run(text, m.end(), strong=True, lower_ok=True)
            if run:
                line_end = text.find("\n", run[1])
                rest = text[run[1]:line_end if line_end >= 0 else len(text)]
                if not rest.strip(" \t,."):
                    out.append(self._finding(run[0], run[1], CUE_SCORE, "signature line"))
        for m in SPEAKER.finditer(text):
            label = m.group("b") or m.group("c")
            start = m.start("b") if m.group("b") else m.start("c")
            if fold(label.strip()) in SPEAKER_LABELS:
                continue
            run = self._run(text, start, strong=m.group("b") is not None)
            if run and run[1] >= start + len(label.rstrip()):
                out.append(self._finding(run[0], run[1], CUE_SCORE, "chat speaker label"))
        return out

    def singles(self, text: str, words: list[re.Match[str]] | None = None) -> list[Finding]:
        """A lone capitalised word that is a common given name somewhere ("Samantha is from ...")."""
        out = []
        for m in _words(text, words):
            w = m.group()
            if len(w) < 3 or not w[0].isupper() or w.isupper() or fold(w) in COMMON:
                continue
            rank = self.lex.given.get(fold(w))
            if rank is not None and rank <= SINGLE_GIVEN:
                out.append(self._finding(m.start(), m.end(), SINGLE_SCORE, "common given name"))
        return out

    def pairs(self, text: str, words: list[re.Match[str]] | None = None) -> list[Finding]:
        """A known given name followed by a known surname (any case); "Surname, Given"."""
        out = []
        words = _words(text, words)
        lex = self.lex
        for a, b in zip(words, words[1:]):
            gap = text[a.end():b.start()]
            wa, wb = a.group(), b.group()
            fa, fb = fold(wa), fold(wb)
            if fa in COMMON or fb in COMMON:
                continue
            g, s = lex.given.get(fa), lex.surname.get(fb)
            if gap in (" ", "\t") and g is not None and s is not None:
                same_case = (wa[:1].isupper() and wb[:1].isupper()) or (wa.isupper() and wb.isupper())
                if same_case or (wa.islower() and wb.islower() and g <= STRONG_GIVEN and s <= SURNAME_TOP // 2):
                    out.append(self._finding(a.start(), b.end(), PAIR_SCORE, "known given name + surname"))
            elif gap == ", " and wa[:1].isupper() and wb[:1].isupper() and not wa.isupper():
                after = text[b.end():b.end() + 3]
                if (lex.surname.get(fa) is not None or lex.given.get(fb) is not None) and fb not in ORG_WORDS \
                        and fa not in ORG_WORDS and not re.match(r", [A-Z]", after) \
                        and (lex.surname.get(fa) is not None and lex.given.get(fb) is not None
                             or a.start() == 0 or text[a.start() - 1] in "\n(" or text[max(0, a.start() - 4):a.start()] == "for "):
                    out.append(self._finding(a.start(), a.end(), PAIR_SCORE, "surname, given name"))
                    out.append(self._finding(b.start(), b.end(), PAIR_SCORE, "surname, given name"))
        return out

    def emails(self, text: str, all_words: list[re.Match[str]] | None = None) -> list[Finding]:
        """Words that an e-mail address in the same text is built from (p.raman@ -> "Priya Raman")."""
        out = []
        locals_ = []
        for m in EMAIL.finditer(text):
            local = fold(m.group().split("@", 1)[0])
            parts = [p for p in _LOCAL_SPLIT.split(local) if p]
            if parts:
                locals_.append((m.start(), m.end(), parts, "".join(parts)))
        if not locals_:
            return out
        words = [w for w in _words(text, all_words) if len(w.group()) >= 2]
        for i, w in enumerate(words):
            fw = re.sub(r"[^a-z]", "", fold(w.group()))
            if len(fw) < 3 or fw in COMMON or any(s <= w.start() < e for s, e, _, _ in locals_):
                continue
            for _, _, parts, joined in locals_:
                if fw in parts or (len(fw) >= 4 and (joined.startswith(fw) or joined.endswith(fw))):
                    start, end = w.start(), w.end()
                    # a neighbour whose initial or whole word is in the address: "Priya Raman" for p.raman@
                    for j in (i - 1, i + 1):
                        if 0 <= j < len(words):
                            nb = words[j]
                            between = text[min(nb.end(), w.end()):max(nb.start(), w.start())]
                            fn = re.sub(r"[^a-z]", "", fold(nb.group()))
                            if between in (" ", ", ") and fn and fn not in COMMON and nb.group()[:1].isupper() and (
                                    fn in parts or fn[0] in parts or joined.endswith(fn)
                                    or joined in (fw + fn[0], fn[0] + fw)):
                                start, end = min(start, nb.start()), max(end, nb.end())
                    out.append(self._finding(start, end, EMAIL_SCORE, "matches an e-mail address in the text"))
                    break
        return out

    def scripts(self, text: str) -> list[Finding]:
        """Words in a non-Latin script inside mostly Latin text: names and places of other languages."""
        out = []
        runs = list(NON_LATIN_WORD.finditer(text))
        if not runs:
            return out
        letters = sum(1 for c in text if c.isalpha())
        foreign = sum(m.end() - m.start() for m in runs)
        if letters == 0 or foreign * 2 > letters:
            return out  # a text in that script: not a name inside English
        i = 0
        while i < len(runs):
            start, end = runs[i].start(), runs[i].end()
            j = i
            while j + 1 < len(runs) and j - i < 5 and text[end:runs[j + 1].start()] in (" ", "·", "・", " (", ") "):
                j += 1
                end = runs[j].end()
            value = text[start:end]
            cjk = value[0] in CJK_SURNAMES and 2 <= len(value) <= 4
            out.append(self._finding(start, end, CUE_SCORE if cjk else SCRIPT_SCORE,
                                     "family name + given name (CJK)" if cjk else "non-Latin-script words in Latin text"))
            i = j + 1
        return out

    def titles(self, text: str, words: list[re.Match[str]] | None = None) -> list[Finding]:
        """Job titles: an occupation word with up to three modifiers in front, the first capitalised
        ("Machine operator", "Semiconductor processing technician"); a lone occupation word after
        "as"/"the" or alone on a line ("Treasurer")."""
        out = []
        words = _words(text, words)
        for i, w in enumerate(words):
            if fold(w.group()) not in JOB_HEADS:
                continue
            start = None
            j = i
            while j > 0 and i - j < 3:
                prev = words[j - 1]
                if text[prev.end():words[j].start()] not in (" ", "-") or fold(prev.group()) in COMMON:
                    break
                j -= 1
                if prev.group()[:1].isupper():
                    start = prev.start()
            if start is not None:
                out.append(Finding("TITLE", start, w.end(), TITLE_SCORE, RECOGNIZER,
                                   explanation=f"{RECOGNIZER}: job title (occupation word); score {TITLE_SCORE:.2f}"))
        for m in _JOB_SINGLE.finditer(text):
            if fold(m.group(1)) in JOB_HEADS:
                out.append(Finding("TITLE", m.start(1), m.end(1), TITLE_SCORE, RECOGNIZER,
                                   explanation=f"{RECOGNIZER}: job title (occupation word); score {TITLE_SCORE:.2f}"))
        return out

    def tidy(self, text: str, f: Finding) -> Finding | None:
        """A NER name span without what is not the name; None when only an ordinary word is left
        ("Visitor", "TODO", "Customer"; not a word that is also a common given name, "Grace", nor one
        after an honorific, "Mr. White"). PERSON spans also lose a leading cue or role word
        ("Customer Lucía Fernández", "hey marco") and a possessive 's; a span with identifier
        characters ("REDIS_PASSWORD=") is no name. Everything else NER labels is kept as it is:
        a PERSON span over an address or a place protects what it covers."""
        words = list(WORD.finditer(text, f.start, f.end))
        if not words:
            return None
        start, end = f.start, f.end
        if f.entity_type == "PERSON":
            if _NOT_A_NAME.search(text, f.start, f.end):
                return None
            if len(words) > 1 and words[-1].group() in ("s", "S") and text[words[-1].start() - 1] in "'’":
                words.pop()
                end = words[-1].end()
            while len(words) > 1 and fold(words[0].group()) in CUE_WORDS:
                words.pop(0)
                start = words[0].start()
        if len(words) == 1 and not _HONORIFIC_BEFORE.search(text, max(0, start - 12), start):
            w = words[0].group()
            given = self.lex.given.get(fold(w))
            if fold(w) in COMMON and (given is None or given > STRONG_GIVEN):
                return None
        return f if (start, end) == (f.start, f.end) else replace(f, start=start, end=end)

    def retype(self, text: str, ner: list[Finding]) -> list[Finding]:
        """NER spans of another label whose words are all known names become PERSON;
        a PERSON span takes the honorific in front of it."""
        out = []
        for f in ner:
            if f.entity_type == "DATE_TIME" and not _could_be_a_date(text[f.start:f.end]):
                continue
            if f.entity_type in ("PERSON", "ORGANIZATION"):
                tidied = self.tidy(text, f)
                if tidied is None:
                    continue
                f = tidied
            if f.entity_type == "PERSON":
                m = _HONORIFIC_BEFORE.search(text, max(0, f.start - 12), f.start)
                if m:
                    f = replace(f, start=m.start())
                out.append(f)
                continue
            if f.entity_type in ("ORGANIZATION", "LOCATION", "NRP", "_OTHER"):
                words = [w.group() for w in WORD.finditer(text, f.start, f.end)]
                names = [w for w in words if fold(w) not in PARTICLES and not (len(w) == 1 and w.isupper())]
                if (2 <= len(names) <= 4 and all(fold(w) not in ORG_WORDS for w in words)
                        and self.lex.given.get(fold(names[0])) is not None
                        and self.lex.surname.get(fold(names[-1])) is not None
                        and all(self.lex.known(w) for w in names)):
                    out.append(replace(f, entity_type="PERSON", score=max(f.score, RETYPE_SCORE),
                                       explanation=f"{f.explanation}; re-typed PERSON: every word is a known name"))
                    continue
            if f.entity_type != "_OTHER":
                out.append(f)
        return out

    def cap_pairs(self, text: str, words: list[re.Match[str]] | None = None) -> list[Finding]:
        """Two capitalised words, one of them a known name, neither an ordinary or company word."""
        out = []
        words = _words(text, words)
        for a, b in zip(words, words[1:]):
            wa, wb = a.group(), b.group()
            if text[a.end():b.start()] != " " or not (wa[:1].isupper() and wb[:1].isupper()):
                continue
            if wa.isupper() or wb.isupper() or len(wa) < 2 or len(wb) < 2:
                continue
            fa, fb = fold(wa), fold(wb)
            if fa in COMMON or fb in COMMON or fa in ORG_WORDS or fb in ORG_WORDS or fb in JOB_HEADS:
                continue
            if self.lex.given.get(fa) is not None or self.lex.surname.get(fb) is not None:
                out.append(self._finding(a.start(), b.end(), SINGLE_SCORE, "capitalised pair with a known name"))
        return out

    def list_lines(self, text: str) -> list[Finding]:
        """A line that is only "Surname, Given" (address books, CRM exports, signatures)."""
        out = []
        for m in _SURNAME_LINE.finditer(text):
            a, b = m.group(1), m.group(2)
            if not {fold(a), fold(b)} & (COMMON | ORG_WORDS | JOB_HEADS):
                out.append(self._finding(m.start(1), m.end(1), SINGLE_SCORE, "line 'Surname, Given'"))
                out.append(self._finding(m.start(2), m.end(2), SINGLE_SCORE, "line 'Surname, Given'"))
        return out

    def repeats(self, text: str, found: list[Finding]) -> list[Finding]:
        """Once a word is part of a person's name in this text, its other occurrences are too ("Advik to send")."""
        names = set()
        for f in found:
            # the names layer's own evidence, or a NER name of two words or more (NER's one-word
            # PERSON spans include "Tales" and "Orchestra": not repeated)
            if f.entity_type == "PERSON" and f.score >= 0.5 and (
                    f.recognizer == RECOGNIZER or len(WORD.findall(text, f.start, f.end)) >= 2):
                for w in WORD.finditer(text, f.start, f.end):
                    if len(w.group()) >= 3 and w.group()[0].isupper() and fold(w.group()) not in COMMON:
                        names.add(w.group())
        return [self._finding(start, end, CUE_SCORE, "repeats a name found in this text")
                for start, end in _whole_word_occurrences(text, names)]

    def detect(self, text: str, ner: list[Finding]) -> list[Finding]:
        """`ner`: the NER findings of `text` (re-typed here); returns them with the names layer's findings."""
        found = self.retype(text, ner)
        words = list(WORD.finditer(text))  # one pass, shared by the word-by-word checks
        found += self.cues(text) + self.singles(text, words) + self.pairs(text, words) + self.cap_pairs(text, words)
        found += self.emails(text, words) + self.scripts(text) + self.titles(text, words) + self.list_lines(text)
        found += self.repeats(text, found)
        return _outermost(found)
