"""Keyword rules: a credential-like name given a literal value.

These catch keys of services that have no rule of their own. The regexes only
find "name <op> value" shapes in env files, JSON, YAML, INI, XML, code, HTTP
headers and CLI flags; `judge_assignment` then decides from the name (password
or other secret, or not a secret at all, like `token_url`) and the value
(random-looking, password-like, or a placeholder).
"""

from __future__ import annotations

import re

from gateway.detection.secrets.rule import GENERIC, Rule, Verdict, rule, secret_span
from gateway.detection.secrets.validators import password_value
from gateway.detection.secrets.values import looks_like_password, looks_random, shannon_entropy

PASSWORD_RULE = "generic-password"
SECRET_RULE = "generic-api-key"

_STEM_WORDS = ("pass", "pwd", "pw", "secret", "token", "key", "auth", "cred", "bearer", "priv")
_STEMS = "(?:" + "|".join(_STEM_WORDS) + ")"
_NOT_IDENT = re.compile(r"[^\w.\-]")
_NAME_CHUNK = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

_PASSWORD_WORDS = frozenset({
    "password", "passwd", "pwd", "pass", "passphrase", "passwort", "pw", "pword",
    "passcode", "pswd", "passw",
})
_SECRET_WORDS = frozenset({
    "secret", "secrets", "token", "tokens", "key", "keys", "apikey", "auth",
    "authorization", "credential", "credentials", "creds", "cred", "bearer",
    "private", "privkey", "privatekey", "secretkey", "accesskey", "authtoken",
    "accesstoken", "refreshtoken", "apitoken", "authkey", "signingkey", "clientsecret",
})
_COMPOUNDS = ("password", "passwd", "passphrase", "secret", "apikey", "accesskey", "authtoken",
              "accesstoken", "apitoken", "privatekey", "credential", "authkey")
# A name ending in one of these describes the secret instead of holding it.
_NOT_A_VALUE = frozenset({
    "id", "ids", "name", "names", "file", "files", "path", "paths", "dir", "url", "uri",
    "endpoint", "type", "types", "kind", "length", "len", "size", "count", "max", "min",
    "timeout", "ttl", "expiry", "expires", "expiration", "expire", "lifetime", "prefix",
    "suffix", "format", "field", "fields", "label", "hint", "placeholder", "policy",
    "version", "alg", "algorithm", "header", "param", "var", "env", "user", "username",
    "login", "email", "mail", "method", "provider", "scheme", "mode", "required", "enabled",
    "disabled", "enable", "flag", "status", "level", "scope", "scopes", "audience", "issuer",
    "domain", "host", "port", "server", "class", "handler", "callback", "pattern", "regex",
    "strength", "reset", "rotation", "changed", "updated", "created", "at", "date", "time",
    "location", "ref", "reference", "source", "store", "storage", "manager", "hash",
    "digest", "checksum", "sha", "md5", "generator", "input", "text", "title",
    "message", "error", "msg", "column", "table", "index", "description", "desc", "help",
    "usage", "rule", "rules", "limit", "pos", "position", "offset",
    "fingerprint", "arn", "region", "bucket", "schema", "template", "attribute",
})
_PUBLIC_WORDS = frozenset({"public", "pub", "publishable", "publish"})
# With these, a bare "key" names a lookup key, not a credential.
_LOOKUP_WORDS = frozenset({"primary", "foreign", "sort", "partition", "cache", "map", "dict",
                           "unique", "hot", "short", "shortcut", "composite", "lookup", "idempotency",
                           "routing", "group", "object", "s3", "registry", "ssh", "gpg"})


def classify_name(name: str) -> str | None:
    """'password', 'secret', or None when the name does not hold a credential."""
    words = [w.lower() for w in _NAME_CHUNK.findall(name)]
    if not words:
        return None
    if words[-1] in _NOT_A_VALUE or any(w in _PUBLIC_WORDS for w in words):
        return None
    joined = "".join(words)
    if any(w in _PASSWORD_WORDS for w in words) or "password" in joined or "passwd" in joined:
        return "password"
    if any(c in joined for c in _COMPOUNDS):
        return "secret"
    held = {w for w in words if w in _SECRET_WORDS}
    if not held or (held <= {"key", "keys"} and any(w in _LOOKUP_WORDS for w in words)):
        return None
    return "secret"


def judge(name: str, value: str) -> Verdict | None:
    """Accept `value` as a credential held by a variable called `name`."""
    kind = classify_name(name)
    if kind is None:
        return None
    if looks_random(value):
        score = 0.85 if len(value) >= 20 and shannon_entropy(value) >= 4.0 else 0.75
        return Verdict(score, PASSWORD_RULE if kind == "password" else SECRET_RULE)
    if kind == "password" and looks_like_password(value):
        return Verdict(0.7, PASSWORD_RULE)
    return None


def identifier_start(text: str, end: int, limit: int = 60) -> int:
    """Where the run of `[\\w.-]` characters ending at `end` starts (at most `limit` back).

    Searched right to left in one pass (a left-to-right regex anchored at `end`
    retries from every position of the window).
    """
    floor = max(0, end - limit)
    other = _NOT_IDENT.search(text[floor:end][::-1])
    return end - other.start() if other else floor


def _full_name(match: re.Match[str]) -> str:
    """The identifier the keyword stem sits in, extended left over `[\\w.-]`."""
    text = match.string
    start = match.start()
    return text[identifier_start(text, start):start] + match.group("name")


_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}


def unquoted_value_length(value: str) -> int:
    """How much of an unquoted value is the value, not the code or markup around it.

    An unquoted value runs to whitespace, a quote, `;` or `,`; brackets inside
    it are kept (`m{{h}o)p$…}}` is one password) but a closing bracket at its
    end that nothing in it opened closes the surrounding call or object
    (`f(password=s3cr3t)`), and `</` starts a closing tag.
    """
    tag = value.find("</", 1)
    if tag != -1:
        value = value[:tag]
    while value and value[-1] in _CLOSERS and value.count(value[-1]) > value.count(_CLOSERS[value[-1]]):
        value = value[:-1]
    return len(value)


def _judge_value(match: re.Match[str], name: str) -> Verdict | None:
    """`judge` the match's value under `name`; an unquoted value loses the code around it."""
    start, end = secret_span(match)
    if "secret" in match.re.groupindex and match.group("secret") is not None:
        end = start + unquoted_value_length(match.string[start:end])
        if end == start:
            return None
    verdict = judge(name, match.string[start:end])
    return verdict._replace(end=end) if verdict is not None else None


def _assignment_validator(match: re.Match[str]) -> Verdict | None:
    return _judge_value(match, _full_name(match))


def _defined_name_validator(match: re.Match[str]) -> Verdict | None:
    return _judge_value(match, match.group("name"))


def _named_validator(match: re.Match[str]) -> Verdict | None:
    start, end = secret_span(match)
    return judge(match.group("name"), match.string[start:end])


_VALUE = (
    r"""(?:"(?P<secret_d>[^"\s]{1,200})"|'(?P<secret_s>[^'\s]{1,200})'|`(?P<secret_b>[^`\s]{1,200})`"""
    r"""|(?P<secret>[^\s"'`;,]{1,200}))"""
)

ASSIGNMENT = rule(
    "generic-assignment",
    "Credential-like name (password, secret, token, api_key, ...) assigned a random-looking or "
    "password-like literal; reported as generic-password or generic-api-key",
    r"(?i)(?P<name>" + _STEMS + r"[\w.\-]{0,40}?)"
    r"""(?:["'`][ \t]*\]|["'`\]]|\[\])?[ \t]*(?::=|=>|==|\?=|->|:|=|(?<=["'])[ \t]*,)[ \t]*@?"""
    r"(?:(?:bearer|basic|token|bot)[ \t]+)?" + _VALUE,
    _STEM_WORDS,
    validator=_assignment_validator,
    score=0.75,
    priority=GENERIC,
    anchored=True,
)

QUOTED_STATEMENT = rule(
    "generic-quoted-statement",
    'A credential-like directive followed by a quoted literal and `;` (nginx-style `api_key "...";`)',
    r"(?i)(?P<name>" + _STEMS + r"[\w.\-]{0,40}?)[ \t]*"
    r"""(?:"(?P<secret_d>[^"\s]{1,200})"|'(?P<secret_s>[^'\s]{1,200})')[ \t]*;""",
    _STEM_WORDS,
    validator=_assignment_validator,
    priority=GENERIC,
    anchored=True,
    requires=r"""["'][ \t]*;""",
)

XML_ELEMENT = rule(
    "generic-xml-element",
    "XML element named like a credential, e.g. <password>...</password>",
    r"(?i)<(?P<name>[\w:.\-]{0,40}" + _STEMS + r"[\w:.\-]{0,40})(?:\s[^<>]{0,200})?>[ \t]*"
    r"(?P<secret>[^<\s]{1,200})[ \t]*</(?P=name)>",
    ["<"],
    validator=_named_validator,
    priority=GENERIC,
)

KEY_VALUE_ATTRIBUTES = rule(
    "generic-key-value-attributes",
    'Config entries like <add key="ApiKey" value="..."/>',
    r"""(?i)\bkey\s*=\s*["'](?P<name>[^"'\s]{1,60})["']\s+value\s*=\s*["'](?P<secret>[^"'\s]{1,200})["']""",
    ["key"],
    validator=_named_validator,
    priority=GENERIC,
    anchored=True,
)

CLI_FLAG = rule(
    "generic-cli-flag",
    "Command-line flag named like a credential followed by its value, e.g. --password xyz",
    r"(?i)(?<![\w\-])--(?P<name>[\w\-]{0,30}" + _STEMS + r"[\w\-]{0,30})[ \t]+"
    r"""(?:"(?P<secret_d>[^"\s]{1,200})"|'(?P<secret_s>[^'\s]{1,200})'|(?P<secret>[^\s"'`\-;|&<>][^\s"'`;|&<>]{0,199}))""",
    ["--"],
    validator=_named_validator,
    priority=GENERIC,
    anchored=True,
)

# C / C++ / Arduino: `#define SECRET_PASS "..."` (Arduino's arduino_secrets.h is exactly this).
C_DEFINE = rule(
    "generic-c-define",
    'Preprocessor macro named like a credential, e.g. #define WIFI_PASSWORD "..."',
    r"#define[ \t]+(?P<name>[A-Za-z_]\w{0,60})[ \t]+" + _VALUE,
    ["#define"],
    validator=_defined_name_validator,
    priority=GENERIC,
    anchored=True,
)

# Terraform: `variable "db_password" { default = "..." }`: the name is the variable's.
TERRAFORM_VARIABLE = rule(
    "generic-terraform-variable",
    "Terraform variable named like a credential with a literal default",
    r'variable[ \t]+"(?P<name>[\w\-]{1,64})"[ \t]*\{[^{}]{0,300}?\bdefault[ \t]*=[ \t]*"(?P<secret_d>[^"\s]{1,200})"',
    ["variable"],
    validator=_named_validator,
    priority=GENERIC,
    anchored=True,
)

# Prose and docs: `the password is 'S3cret!'`, `the password for user "ann" is "..."`.
PASSWORD_STATEMENT = rule(
    "password-statement",
    "A sentence stating a password in quotes (the password is '...')",
    r"(?i)password(?:[ \t]+for[ \t]+(?:the[ \t]+)?(?:user(?:name)?|account)[ \t]+(?:\"[^\"\n]{1,64}\"|'[^'\n]{1,64}'))?"
    r"""[ \t]+is[ \t]+(?:"(?P<secret_d>[^"\s]{1,128})"|'(?P<secret_s>[^'\s]{1,128})')""",
    ["password"],
    validator=password_value,
    priority=GENERIC,
    anchored=True,
)

GENERIC_RULES: list[Rule] = [ASSIGNMENT, QUOTED_STATEMENT, XML_ELEMENT, KEY_VALUE_ATTRIBUTES, CLI_FLAG, C_DEFINE,
                             TERRAFORM_VARIABLE, PASSWORD_STATEMENT]
