"""Rules for credential formats of named services.

Formats follow the vendors' published token layouts (as collected by gitleaks
and detect-secrets); the patterns themselves are written here. Keywords are
literal substrings that every match contains, so a rule costs nothing on text
that cannot match it.
"""

from __future__ import annotations

import re

from gateway.detection.secrets.rule import SEMI_GENERIC, Rule, rule
from gateway.detection.secrets.validators import (
    azure_sas_signature,
    basic_credentials,
    connection_string_password,
    discord_bot_token,
    jwt_header_has_alg,
    literal_password,
    password_value,
    pypi_token,
    random_value,
    url_password,
    url_scheme,
)

# Right edges: the secret is not followed by more of a longer word (left edges
# are checked by the engine, see `Rule.left_edge`).
R = r"(?![A-Za-z0-9_])"
RD = r"(?![A-Za-z0-9_\-])"
# "name ... = value" with any quoting, for rules that need a keyword nearby.
ASSIGN = r"""[\w.\-]{0,30}?["'`]?[ \t]*(?::=|=>|=|:)[ \t]*["'`]?"""
# "://user:password@" — begins with a literal so the regex engine can search fast;
# the validator checks the scheme in front of it.
URL_CREDENTIALS = r"://[^\s:/@'\"`<>]{0,64}:(?P<secret>[^\s@/'\"`<>]{1,128})@(?=[A-Za-z0-9\[])"
DATABASE_SCHEMES = (
    "postgres", "postgresql", "mysql", "mariadb", "mongodb", "mongodb+srv", "redis", "rediss",
    "amqp", "amqps", "mssql", "sqlserver", "oracle", "cockroachdb", "clickhouse", "couchdb",
    "neo4j", "neo4j+s", "cassandra", "memcached",
)
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


_LITERAL_HEAD = re.compile(r"(?:[A-Za-z0-9_\-]|\\[.\-$])+")


def _edge_after_prefix(body: str) -> str:
    """Put the left-edge check right after the body's literal prefix.

    `ghp_(?<![A-Za-z0-9_\-]ghp_)...` keeps the regex engine's fast search for
    the literal `ghp_` and refuses a start inside a longer run at once, so a
    long run of repeated prefixes cannot make the search quadratic.
    """
    head = _LITERAL_HEAD.match(body)
    literal = head.group() if head else ""
    if literal and body[len(literal):len(literal) + 1] in ("{", "*", "+", "?"):
        literal = literal[:-2] if literal.endswith(("\\.", "\\-", "\\$")) else literal[:-1]
    if not literal:
        return r"(?<![A-Za-z0-9_\-])" + body
    return literal + r"(?<![A-Za-z0-9_\-]" + literal + ")" + body[len(literal):]


def _prefixed(id: str, description: str, body: str, keywords: list[str], **kw) -> Rule:
    """A token that starts with a fixed vendor prefix; the whole token is the secret."""
    return rule(id, description, "(?P<secret>" + _edge_after_prefix(body) + ")" + RD, keywords, left_edge=True, **kw)


CLOUD = [
    rule("aws-access-key-id", "AWS access key id (AKIA/ASIA/...)",
         r"(?P<secret>(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16})" + R,
         ["akia", "asia", "abia", "acca", "a3t", "agpa", "aida", "aroa", "aipa", "anpa", "anva"],
         entropy=3.0, left_edge=True),
    rule("aws-secret-access-key", "AWS secret access key assigned near an 'aws ... secret' name",
         r"(?i)aws[\w.\-]{0,25}?(?:secret|sk)" + ASSIGN + r"(?-i:(?P<secret>[A-Za-z0-9/+]{40}))(?![A-Za-z0-9/+=])",
         ["aws"], entropy=3.5, anchored=True),
    rule("aws-session-token", "AWS temporary session token",
         r"(?i)aws[\w.\-]{0,20}?session[\w.\-]{0,10}?token" + ASSIGN + r"(?P<secret>[A-Za-z0-9/+=]{100,2000})",
         ["aws"], entropy=4.0, anchored=True),
    _prefixed("aws-mws-key", "Amazon MWS auth token", r"amzn\.mws\." + UUID, ["amzn.mws."]),
    rule("gcp-service-account", "Google service account JSON key (private_key_id)",
         r'"private_key_id"\s*:\s*"(?P<secret>[a-f0-9]{40})"', ["private_key_id"]),
    _prefixed("gcp-oauth-client-secret", "Google OAuth client secret", r"GOCSPX-[A-Za-z0-9_\-]{28}", ["gocspx-"]),
    _prefixed("google-oauth-access-token", "Google OAuth access token", r"ya29\.[0-9A-Za-z_\-]{30,}", ["ya29."], entropy=3.5),
    rule("google-oauth-refresh-token", "Google OAuth refresh token",
         r"(?<![\w/])(?P<secret>1//0[A-Za-z0-9_\-]{40,})" + RD, ["1//0"], entropy=3.5, anchored=True),
    rule("azure-storage-connection-string", "Azure storage / Cosmos DB AccountKey in a connection string",
         r"(?i)AccountKey=(?P<secret>[A-Za-z0-9+/]{86}==)", ["accountkey="], anchored=True),
    rule("azure-shared-access-key", "Azure Service Bus / Event Hubs SharedAccessKey",
         r"(?i)SharedAccessKey=(?P<secret>[A-Za-z0-9+/]{43}=)", ["sharedaccesskey="], anchored=True),
    rule("azure-storage-account-key", "Azure storage account key assigned to an azure/storage/account name",
         r"(?i)(?:azure|storage|account)[\w.\-]{0,30}?key" + ASSIGN + r"(?-i:(?P<secret>[A-Za-z0-9+/]{86}==))",
         ["azure", "storage", "account"], anchored=True),
    rule("azure-sas-token", "Azure shared access signature (sig= next to sv=)",
         r"(?i)(?<=[?&;])sig=(?P<secret>[A-Za-z0-9%+/]{40,}(?:=|%3D){0,2})", ["sig="],
         validator=azure_sas_signature, anchored=True),
    _prefixed("heroku-platform-token", "Heroku platform API token (HRKU-)", r"HRKU-[A-Za-z0-9_\-]{60}", ["hrku-"]),
    # A service token may carry its environment's slug: dp.st.<env>.<token>.
    _prefixed("doppler-token", "Doppler service/personal/CLI token",
              r"dp\.(?:pt|st(?:\.[a-z0-9_\-]{2,35})?|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}", ["dp."]),
    _prefixed("tailscale-key", "Tailscale API/auth key", r"tskey-[a-z]+-[A-Za-z0-9]{6,}-[A-Za-z0-9]{16,}", ["tskey-"]),
    _prefixed("supabase-token", "Supabase personal access token", r"sbp_[a-f0-9]{40}", ["sbp_"]),
    # Salesforce session / OAuth access token: the 15-character org id (key prefix 00D), "!", the opaque part.
    _prefixed("salesforce-access-token", "Salesforce access token (org id ! token)",
              r"00D[A-Za-z0-9]{12}![A-Za-z0-9._]{96}", ["00d"], entropy=3.5, anchored=True),
    # Azure DevOps personal access tokens (the 52-character lower-case kind) assigned to a `pat` name.
    rule("azure-devops-pat", "Azure DevOps personal access token assigned to a PAT name",
         r"(?i)(?<![a-z])pat(?:[_\-.]?token)?" + ASSIGN + r"(?-i:(?P<secret>[a-z0-9]{52}))(?![A-Za-z0-9])",
         ["pat"], entropy=4.0, anchored=True),
]

CODE_HOSTING = [
    _prefixed("github-refresh-token", "GitHub refresh token", r"ghr_[A-Za-z0-9]{36,76}", ["ghr_"]),
    _prefixed("gitlab-token", "Other GitLab tokens (feed, SCIM, CI job, mail, agent, OAuth app)",
              r"gl(?:(?:ft|soat|cbt|ffct)-[A-Za-z0-9_\-]{20,}|imt-[A-Za-z0-9_\-]{25,}|agent-[A-Za-z0-9_\-]{50,}"
              r"|oas-[A-Za-z0-9_\-]{64,})",
              ["glft-", "glsoat-", "glcbt-", "glimt-", "glagent-", "gloas-", "glffct-"]),
    # gitleaks' rule wants 40 hex digits; GitLab's newer tokens use base64url characters.
    _prefixed("gitlab-pipeline-trigger-token", "GitLab pipeline trigger token (glptt-, 40 characters)",
              r"glptt-[A-Za-z0-9_\-]{40}", ["glptt-"], below_catalogue=True),
    _prefixed("bitbucket-app-password", "Bitbucket / Atlassian app password (ATBB)", r"ATBB[A-Za-z0-9_=.\-]{28,}", ["atbb"]),
    _prefixed("pypi-token", "PyPI / TestPyPI upload token",
              r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{50,}", ["pypi-age"],
              validator=pypi_token),
    _prefixed("docker-hub-pat", "Docker Hub personal access token", r"dckr_pat_[A-Za-z0-9_\-]{27}", ["dckr_pat_"]),
    _prefixed("nuget-api-key", "NuGet.org API key", r"oy2[a-z0-9]{43}", ["oy2"], entropy=3.5),
    _prefixed("dependency-track-api-key", "Dependency-Track API key (odt_ prefix)", r"odt_[A-Za-z0-9]{32,255}",
              ["odt_"], entropy=3.5),
    # CodeClimate's test reporter id is a write credential for coverage uploads, whatever its name says.
    rule("codeclimate-reporter-id", "CodeClimate test reporter id / repo token",
         r"(?i)(?:cc_test_reporter_id|codeclimate_repo_token)" + ASSIGN + r"(?P<secret>[a-f0-9]{64})(?![A-Za-z0-9])",
         ["cc_test_reporter_id", "codeclimate_repo_token"], entropy=3.0, anchored=True),
    # gitleaks' rule wants a quote, space or `;` after the token; ours takes any word edge (`<br/>`).
    _prefixed("sourcegraph-token", "Sourcegraph access token",
              r"sgp_(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40}", ["sgp_"], below_catalogue=True),
    _prefixed("circleci-token", "CircleCI personal API token", r"CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}", ["ccipat_"]),
    _prefixed("buildkite-token", "Buildkite agent/API token", r"bkua_[a-f0-9]{40}", ["bkua_"]),
    _prefixed("airtable-pat", "Airtable personal access token", r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}", ["pat"]),
    _prefixed("sentry-auth-token", "Sentry org/user auth token", r"sntry[su]_[A-Za-z0-9+/=_\-]{40,}", ["sntrys_", "sntryu_"]),
    rule("sentry-dsn", "Sentry DSN key",
         r"://(?P<secret>[a-fA-F0-9]{32})(?::[a-fA-F0-9]{32})?@[A-Za-z0-9.\-]+(?::\d+)?/\d+", ["://"],
         validator=url_scheme(("http", "https"))),
    _prefixed("newrelic-user-api-key", "New Relic user API key", r"NRAK-[A-Z0-9]{27}", ["nrak-"]),
    _prefixed("newrelic-insert-key", "New Relic insights insert key", r"NRII-[A-Za-z0-9_\-]{32}", ["nrii-"]),
    _prefixed("newrelic-browser-key", "New Relic browser API key", r"NRJS-[a-f0-9]{19}", ["nrjs-"]),
    # EU-region accounts' keys start with eu01xx instead of six hex digits.
    _prefixed("newrelic-license-key", "New Relic ingest license key", r"(?:[a-fA-F0-9]{6}|eu01xx)[a-fA-F0-9]{30}NRAL",
              ["nral"], anchored=True, anchor_back=(36,)),
    rule("datadog-api-key", "Datadog API or application key assigned to a datadog/dd name",
         r"(?i)(?:datadog|(?<![a-z])dd)[\w.\-]{0,25}?key" + ASSIGN + r"(?P<secret>[a-f0-9]{32}(?:[a-f0-9]{8})?)(?![a-f0-9])",
         ["datadog", "dd"], entropy=3.0, anchored=True),
    _prefixed("onepassword-service-token", "1Password service account token", r"ops_eyJ[A-Za-z0-9+/=_\-]{100,}", ["ops_eyj"]),
    _prefixed("langsmith-api-key", "LangSmith API key", r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}", ["lsv2_"]),
]

AI = [
    _prefixed("openai-api-key", "OpenAI API key (sk-, sk-proj-, sk-svcacct-, sk-admin-; keys with an id carry T3BlbkFJ, base64 of 'OpenAI')",
              r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{48})",
              ["sk-"], entropy=3.5),
    _prefixed("groq-api-key", "Groq API key", r"gsk_[A-Za-z0-9]{52}", ["gsk_"]),
    _prefixed("tavily-api-key", "Tavily API key", r"tvly-(?:dev-|prod-)?[A-Za-z0-9]{32}", ["tvly-"], entropy=3.5),
    _prefixed("xai-api-key", "xAI API key", r"xai-[A-Za-z0-9]{80}", ["xai-"]),
    _prefixed("replicate-api-token", "Replicate API token", r"r8_[A-Za-z0-9]{37}", ["r8_"]),
]

MESSAGING_AND_PAYMENTS = [
    _prefixed("slack-legacy-token", "Slack legacy / workspace token", r"xox[aors]-[A-Za-z0-9\-]{10,}",
              ["xoxa-", "xoxo-", "xoxr-", "xoxs-"], entropy=3.0),
    # Slack's token layout: type prefix, dash-separated numeric ids, a random tail.
    # gitleaks' user/bot rules want 10-13 digit ids; older workspaces' ids are shorter.
    _prefixed("slack-token", "Slack token (xoxp/xoxb/xoxa/xoxe/xoxo/xoxr/xoxs with numeric id groups)",
              r"xox[abeoprs]-(?:\d{1,13}-){1,4}[A-Za-z0-9]{6,64}",
              ["xoxa-", "xoxb-", "xoxe-", "xoxo-", "xoxp-", "xoxr-", "xoxs-"], below_catalogue=True),
    # Kept although gitleaks has one: its rule needs 43+ characters after the path
    # prefix, so a webhook with short workspace/channel ids would go out.
    rule("slack-webhook-url", "Slack incoming webhook URL",
         r"(?P<secret>https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{20,})",
         ["https://hooks.slack.com", "http://hooks.slack.com"], anchored=True),
    rule("discord-webhook-url", "Discord webhook URL",
         r"(?P<secret>https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/webhooks/\d{15,21}/[A-Za-z0-9_\-]{60,68})",
         ["discord"]),
    rule("discord-bot-token", "Discord bot token (base64 bot id . timestamp . hmac)",
         r"(?P<secret>[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40})" + RD,
         validator=discord_bot_token, left_edge=True, requires=r"\.[A-Za-z0-9_\-]{6}\."),
    rule("telegram-bot-token", "Telegram bot token",
         r"(?<![\w:])(?P<secret>\d{8,10}:AA[A-Za-z0-9_\-]{33})" + RD, [":aa"], anchored=True, anchor_back=(8, 9, 10)),
    # The older host (outlook.office.com/webhook/) takes the same path: two GUIDs, the connector, a key, a GUID.
    rule("microsoft-teams-webhook", "Microsoft Teams incoming webhook URL",
         r"(?P<secret>https://(?:[a-z0-9\-]+\.webhook\.office\.com/webhookb2/[^\s\"'<>]{60,}"
         r"|outlook\.office(?:365)?\.com/webhook/" + UUID + "@" + UUID + r"/[A-Za-z]+/[a-fA-F0-9]{32}/" + UUID + "))",
         ["webhook.office.com", "outlook.office.com/webhook/", "outlook.office365.com/webhook/"]),
    _prefixed("twilio-account-sid", "Twilio account SID", r"AC[a-f0-9]{32}", [], entropy=3.0, score=0.6),
    _prefixed("mailchimp-api-key", "Mailchimp API key", r"[0-9a-f]{32}-us\d{1,2}", ["-us"], entropy=3.0, anchored=True, anchor_back=(32,)),
    _prefixed("stripe-webhook-secret", "Stripe webhook signing secret", r"whsec_[A-Za-z0-9+/=]{24,}", ["whsec_"]),
    _prefixed("square-oauth-secret", "Square OAuth secret", r"sq0csp-[A-Za-z0-9_\-]{43}", ["sq0csp-"]),
    # gitleaks' rule wants a quote, space or `;` after the token; ours takes any word edge (`<br/>`).
    _prefixed("square-sq0atp-token", "Square personal access token (sq0atp-)", r"sq0atp-[A-Za-z0-9_\-]{22}",
              ["sq0atp-"], below_catalogue=True),
    _prefixed("twitch-stream-key", "Twitch stream key", r"live_\d{6,12}_[A-Za-z0-9]{30,36}", ["live_"], entropy=3.5),
    _prefixed("adafruit-io-key", "Adafruit IO key", r"aio_[A-Za-z0-9]{28}", ["aio_"], entropy=3.5),
    rule("paypal-braintree-access-token", "PayPal Braintree access token",
         r"(?P<secret>access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32})", ["access_token$production$"], anchored=True),
    _prefixed("facebook-access-token", "Facebook / Meta access token", r"EAA(?!A)[A-Za-z0-9]{80,}", ["eaa"], entropy=3.5),
    _prefixed("twitter-bearer-token", "Twitter / X app bearer token", r"A{22}[A-Za-z0-9%]{30,}", ["a" * 22], anchored=True),
    _prefixed("mapbox-secret-token", "Mapbox secret access token", r"sk\.eyJ[A-Za-z0-9_\-]{50,}\.[A-Za-z0-9_\-]{20,}", ["sk.eyj"]),
    _prefixed("firebase-cloud-messaging-key", "Firebase Cloud Messaging legacy server key",
              r"AAAA[A-Za-z0-9_\-]{7}:APA91b[A-Za-z0-9_\-]{50,}", [":apa91b"]),
    _prefixed("dropbox-token", "Dropbox short-lived access token", r"sl\.(?:u\.)?[A-Za-z0-9_\-]{130,}", ["sl."], entropy=3.5),
]

KEYS_AND_URLS = [
    _prefixed("jwt", "JSON Web Token (header decodes to JSON with alg)",
              r"eyJ[A-Za-z0-9_\-]{8,}\.(?:[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{8,}|eyJ[A-Za-z0-9_\-]{8,})", ["eyj"],
              validator=jwt_header_has_alg),
    # The key material between the armour lines is the secret (the BEGIN/END lines
    # are boilerplate). The header is what every private key carries: without an END
    # line or a base64 body (truncated, mangled), the paragraph after it counts.
    rule("pem-private-key", "PEM private key block (RSA, EC, DSA, PKCS#8, encrypted)",
         r"-----BEGIN (?P<kind>(?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----"
         r"(?:(?:\s|\\[rn])*(?P<secret>[\s\S]{16,20000}?)(?:\s|\\[rn])*-----END (?P=kind)-----"
         r"|\s*(?P<secret_body>[A-Za-z0-9+/=\\:,\-][A-Za-z0-9+/=\s\\:,\-]{39,20000}[A-Za-z0-9+/=])"
         r"|[ \t]*\r?\n?(?P<secret_rest>[^\n]+(?:\n[^\n]+){0,64}))",
         ["private key-----"]),
    rule("putty-private-key", "PuTTY private key file",
         r"PuTTY-User-Key-File-\d: [\s\S]{16,8000}?Private-MAC: [0-9a-f]{40,64}", ["putty-user-key-file"]),
    rule("database-url-password", "Password inside a database / broker connection URL",
         URL_CREDENTIALS, ["://"], validator=url_password(DATABASE_SCHEMES)),
    rule("url-basic-auth", "user:password embedded in any URL",
         URL_CREDENTIALS, ["://"], validator=url_password(), priority=SEMI_GENERIC),
    rule("http-basic-auth", "HTTP Basic credentials (base64 user:password)",
         r"(?i)(?<![\w-])basic[ \t]+(?P<secret>[A-Za-z0-9+/]{8,}={0,2})(?![\w+/=])",
         ["basic"], validator=basic_credentials, priority=SEMI_GENERIC, anchored=True),
    # SSWS is Okta's scheme for its API tokens (`Authorization: SSWS 00…`).
    rule("http-bearer-token", "HTTP Bearer (or Okta SSWS) token",
         r"(?i)(?<![\w-])(?:bearer|ssws)[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]{16,}=*)",
         ["bearer", "ssws"], validator=random_value, priority=SEMI_GENERIC, anchored=True),
    # mysql -pSECRET / -p'SECRET' (the password glued to -p; `-p` alone prompts for it).
    rule("mysql-cli-password", "Password given to mysql / mysqldump / mysqladmin / mariadb as -p<password>",
         r"(?<![\w-])(?:mysql|mysqldump|mysqladmin|mysqlimport|mariadb|mariadb-dump)\b[^\n|;&]{0,200}?[ \t]-p"
         r"""(?:'(?P<secret_s>[^'\s]{1,128})'|"(?P<secret_d>[^"\s]{1,128})"|(?P<secret>[^\s'"\-][^\s'"]{0,127}))""",
         ["mysql", "mariadb"], validator=password_value, priority=SEMI_GENERIC),
    rule("curl-user-password", "Password given to curl -u / --user",
         r"(?<![\w-])(?:-u|--user)[ \t]+(?P<q>[\"']?)[^\s:\"']{1,64}:(?P<secret>[^\s\"'@]{1,128})(?P=q)(?=[\s;|&)]|$)",
         ["-u", "--user"], validator=password_value, priority=SEMI_GENERIC, anchored=True),
]

# Places that only ever hold a credential, whatever it looks like: a password there
# is reported unless it is a placeholder or a variable (`literal_password`).
CREDENTIAL_SLOTS = [
    # ~/.netrc (curl, ftp, git): `machine <host> login <user> password <password>`, on one line or several.
    # The host has a dot (or is localhost), which keeps prose ("machine learning login page") out.
    rule("netrc-password", "Password in a .netrc entry",
         r"machine[ \t]+(?:[\w\-]+(?:\.[\w\-]+)+|localhost)(?:\s+(?:login|account)[ \t]+\S+){0,2}\s+password[ \t]+(?P<secret>\S+)",
         ["machine"], validator=literal_password, priority=SEMI_GENERIC, anchored=True),
    rule("psexec-password", "Password given to Sysinternals PsExec as -p",
         r"(?i)psexec(?:64)?(?:\.exe)?\b[^\n|&]{0,200}?[ \t]-u[ \t]+\S+[ \t]+-p[ \t]+"
         r"""(?:"(?P<secret_d>[^"\n]{1,128})"|(?P<secret>[^\s"]{1,128}))""",
         ["psexec"], validator=literal_password, priority=SEMI_GENERIC, anchored=True),
    rule("powercli-password", "Password given to VMware PowerCLI Connect-VIServer as -Password",
         r"(?i)connect-viserver\b[^\n|]{0,200}?[ \t]-password[ \t]+"
         r"""(?:"(?P<secret_d>[^"\n]{1,128})"|'(?P<secret_s>[^'\n]{1,128})'|(?P<secret>[^\s"']{1,128}))""",
         ["connect-viserver"], validator=literal_password, priority=SEMI_GENERIC, anchored=True),
    rule("connection-string-password", "Password in an ODBC / ADO.NET connection string (User ID=…;Password=…;)",
         r"(?i)(?<![\w\-])(?:password|pwd)[ \t]*=[ \t]*(?P<secret>[^;\"'\s<>]{1,128})(?=[;\"'<\s]|$)",
         ["password", "pwd"], validator=connection_string_password, priority=SEMI_GENERIC, anchored=True),
    # .NET: new NetworkCredential(user, password[, domain]); new DirectoryEntry(path, user, password[, type]).
    rule("dotnet-credential-literal", "Password literal passed to .NET NetworkCredential / DirectoryEntry",
         r'NetworkCredential\s*\(\s*"[^"\n]{1,100}"\s*,\s*"(?P<secret>[^"\n]{1,128})"'
         r'|DirectoryEntry\s*\(\s*"[^"\n]{1,200}"\s*,\s*"[^"\n]{1,100}"\s*,\s*"(?P<secret_de>[^"\n]{1,128})"',
         ["networkcredential", "directoryentry"], validator=literal_password, priority=SEMI_GENERIC),
    # What Jenkins prints at its first start (and stores in secrets/initialAdminPassword).
    rule("jenkins-initial-admin-password", "Jenkins setup wizard admin password from the start-up log",
         r"(?i)please use the following password to proceed to installation:\s*(?P<secret>[a-f0-9]{32})(?![a-f0-9])",
         ["please use the following password to proceed to installation"], anchored=True),
    # `vault operator init` prints "Unseal Key 1: <key>"; `vault operator unseal <key>` takes one.
    rule("vault-unseal-key", "HashiCorp Vault unseal key (Shamir share, 44 base64 characters)",
         r"(?i)unseal(?:[ \t]+key[ \t]*\d{0,2}[ \t]*:|(?:[ \t]+-[\w\-]+)*)[ \t]+"
         r"(?-i:(?P<secret>[A-Za-z0-9+/]{43}[A-Za-z0-9+/=]))(?![A-Za-z0-9+/=])",
         ["unseal"], entropy=4.0, anchored=True),
    # TrueNAS API keys (`<id>-<64 characters>`) sent in the websocket API's login call.
    rule("truenas-api-key", "TrueNAS API key in an auth.login_with_api_key call",
         r'login_with_api_key"[^\[\]]{0,100}?\[\s*"(?P<secret>\d{1,6}-[A-Za-z0-9]{64})"',
         ["login_with_api_key"], entropy=4.0, anchored=True),
    # ThingsBoard's device API takes the device's access token in the path.
    rule("thingsboard-access-token", "ThingsBoard device access token in a device API URL",
         r"(?i)thingsboard[\w.\-]*(?::\d{1,5})?/api/v1/(?-i:(?P<secret>[A-Za-z0-9]{20}))/"
         r"(?:telemetry|attributes|rpc|claim)", ["thingsboard"], entropy=3.0, anchored=True),
]

# Password hashes in crypt(3)'s modular format and hashcat's Kerberos formats: not the
# password, but what offline cracking starts from (a shadow file, a dumped user table,
# roasted tickets). Every layout is fixed: `$id$[params$]salt$hash` of the crypt alphabet.
CRYPT = r"[./A-Za-z0-9]"
PASSWORD_HASHES = [
    rule("password-hash", "Password hash (md5crypt, bcrypt, sha256/sha512crypt, yescrypt, Cisco type 8/9, "
                          "argon2, Kerberos AS-REP/TGS)",
         r"(?P<secret>\$(?:1\$" + CRYPT + r"{1,8}\$" + CRYPT + r"{22}"
         r"|2[abxy]\$\d{2}\$" + CRYPT + r"{53}"
         r"|5\$(?:rounds=\d{1,9}\$)?" + CRYPT + r"{1,16}\$" + CRYPT + r"{43}"
         r"|6\$(?:rounds=\d{1,9}\$)?" + CRYPT + r"{1,16}\$" + CRYPT + r"{86}"
         r"|[89]\$" + CRYPT + r"{14}\$" + CRYPT + r"{43}"
         r"|y\$" + CRYPT + r"{1,16}\$" + CRYPT + r"{1,86}\$" + CRYPT + r"{43}"
         r"|argon2(?:id|i|d)\$v=\d{1,3}\$m=\d{1,8},t=\d{1,4},p=\d{1,3}\$[A-Za-z0-9+/]{11,64}\$[A-Za-z0-9+/]{16,128}"
         r"|krb5asrep\$(?:17|18|23)\$(?:[^\s:$]{1,128}:)?[0-9a-f]{24,32}\$[0-9a-f]{64,8192}"
         r"|krb5tgs\$(?:17|18|23)\$\*[^\s*]{1,256}\*\$[0-9a-f]{24,32}\$[0-9a-f]{64,8192}))(?![./A-Za-z0-9+$])",
         ["$1$", "$2a$", "$2b$", "$2x$", "$2y$", "$5$", "$6$", "$8$", "$9$", "$y$", "$argon2", "$krb5asrep$",
          "$krb5tgs$"], score=0.9, anchored=True),
]

SERVICE_RULES: list[Rule] = (CLOUD + CODE_HOSTING + AI + MESSAGING_AND_PAYMENTS + KEYS_AND_URLS + CREDENTIAL_SLOTS
                             + PASSWORD_HASHES)
