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
    discord_bot_token,
    jwt_header_has_alg,
    password_value,
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
    _prefixed("gcp-api-key", "Google Cloud / Firebase API key (AIza...)", r"AIza[0-9A-Za-z_\-]{35}", ["aiza"], entropy=3.0),
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
    rule("azure-ad-client-secret", "Azure AD / Entra client secret",
         r"(?:^|(?<=[\\'\"`\s>=:(,]))(?P<secret>[a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.\-]{31,34})(?=$|[\\'\"`\s<),])",
         ["q~"], entropy=3.0, anchored=True, anchor_back=(4,)),
    _prefixed("alibaba-access-key-id", "Alibaba Cloud AccessKey id", r"LTAI[A-Za-z0-9]{20}", ["ltai"], entropy=3.0),
    _prefixed("digitalocean-token", "DigitalOcean personal/OAuth/refresh token", r"do[opr]_v1_[a-f0-9]{64}", ["_v1_"]),
    rule("heroku-api-key", "Heroku API key (UUID assigned to a heroku name)",
         r"(?i)heroku[\w.\-]{0,20}?(?:key|token|secret|auth)" + ASSIGN + r"(?P<secret>" + UUID + ")", ["heroku"], anchored=True),
    _prefixed("heroku-platform-token", "Heroku platform API token (HRKU-)", r"HRKU-[A-Za-z0-9_\-]{60}", ["hrku-"]),
    _prefixed("cloudflare-origin-ca-key", "Cloudflare origin CA key", r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}", ["v1.0-"]),
    _prefixed("databricks-token", "Databricks personal access token", r"dapi[a-f0-9]{32}(?:-\d)?", ["dapi"], entropy=3.0),
    _prefixed("terraform-cloud-token", "Terraform Cloud / Enterprise API token",
              r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=\-]{60,70}", ["atlasv1"], anchored=True, anchor_back=(15,)),
    _prefixed("vault-token", "HashiCorp Vault service or batch token", r"hv[sb]\.[A-Za-z0-9_\-]{24,}", ["hvs.", "hvb."], entropy=3.5),
    _prefixed("pulumi-access-token", "Pulumi access token", r"pul-[a-f0-9]{40}", ["pul-"]),
    _prefixed("doppler-token", "Doppler service/personal/CLI token",
              r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}", ["dp."]),
    _prefixed("flyio-token", "Fly.io access token", r"fo1_[\w\-]{43}", ["fo1_"]),
    _prefixed("tailscale-key", "Tailscale API/auth key", r"tskey-[a-z]+-[A-Za-z0-9]{6,}-[A-Za-z0-9]{16,}", ["tskey-"]),
    _prefixed("supabase-token", "Supabase personal access token", r"sbp_[a-f0-9]{40}", ["sbp_"]),
    _prefixed("planetscale-token", "PlanetScale token or password", r"pscale_(?:tkn|pw|oauth)_[\w=.\-]{32,64}", ["pscale_"]),
    _prefixed("dynatrace-token", "Dynatrace API token", r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}", ["dt0c01."]),
]

CODE_HOSTING = [
    _prefixed("github-pat", "GitHub personal access token (classic)", r"ghp_[A-Za-z0-9]{36}", ["ghp_"]),
    _prefixed("github-oauth-token", "GitHub OAuth access token", r"gho_[A-Za-z0-9]{36}", ["gho_"]),
    _prefixed("github-user-token", "GitHub user-to-server token", r"ghu_[A-Za-z0-9]{36}", ["ghu_"]),
    _prefixed("github-app-token", "GitHub server-to-server (app installation) token", r"ghs_[A-Za-z0-9]{36}", ["ghs_"]),
    _prefixed("github-refresh-token", "GitHub refresh token", r"ghr_[A-Za-z0-9]{36,76}", ["ghr_"]),
    _prefixed("github-fine-grained-pat", "GitHub fine-grained personal access token",
              r"github_pat_[A-Za-z0-9_]{70,90}", ["github_pat_"]),
    _prefixed("gitlab-pat", "GitLab personal access token", r"glpat-[A-Za-z0-9_\-]{20,}(?:\.[A-Za-z0-9_\-]+)*", ["glpat-"]),
    _prefixed("gitlab-pipeline-trigger-token", "GitLab pipeline trigger token", r"glptt-[0-9a-f]{40}", ["glptt-"]),
    _prefixed("gitlab-runner-registration-token", "GitLab runner registration token", r"GR1348941[A-Za-z0-9_\-]{20}", ["gr1348941"],
              entropy=3.0),
    _prefixed("gitlab-runner-token", "GitLab runner authentication token", r"glrt-[A-Za-z0-9_\-]{20,}(?:\.[A-Za-z0-9_\-]+)*", ["glrt-"]),
    _prefixed("gitlab-deploy-token", "GitLab deploy token", r"gldt-[A-Za-z0-9_\-]{20,}", ["gldt-"]),
    _prefixed("gitlab-token", "Other GitLab tokens (feed, SCIM, CI job, mail, agent, OAuth app)",
              r"gl(?:(?:ft|soat|cbt|ffct)-[A-Za-z0-9_\-]{20,}|imt-[A-Za-z0-9_\-]{25,}|agent-[A-Za-z0-9_\-]{50,}"
              r"|oas-[A-Za-z0-9_\-]{64,})",
              ["glft-", "glsoat-", "glcbt-", "glimt-", "glagent-", "gloas-", "glffct-"]),
    _prefixed("bitbucket-app-password", "Bitbucket / Atlassian app password (ATBB)", r"ATBB[A-Za-z0-9_=.\-]{28,}", ["atbb"]),
    rule("bitbucket-client-secret", "Bitbucket OAuth client secret",
         r"(?i)bitbucket[\w.\-]{0,20}?(?:secret|key|token)" + ASSIGN + r"(?P<secret>[A-Za-z0-9=_\-]{32,64})(?![\w=\-])",
         ["bitbucket"], entropy=3.5, anchored=True),
    _prefixed("atlassian-api-token", "Atlassian (Jira/Confluence) API token", r"AT[AC]TT3[A-Za-z0-9_=\-]{150,}", ["att3"]),
    _prefixed("npm-token", "npm access token", r"npm_[A-Za-z0-9]{36}", ["npm_"]),
    _prefixed("pypi-token", "PyPI / TestPyPI upload token",
              r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{50,}", ["pypi-age"]),
    _prefixed("rubygems-api-key", "RubyGems API key", r"rubygems_[a-f0-9]{48}", ["rubygems_"]),
    _prefixed("docker-hub-pat", "Docker Hub personal access token", r"dckr_pat_[A-Za-z0-9_\-]{27}", ["dckr_pat_"]),
    _prefixed("circleci-token", "CircleCI personal API token", r"CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}", ["ccipat_"]),
    _prefixed("buildkite-token", "Buildkite agent/API token", r"bkua_[a-f0-9]{40}", ["bkua_"]),
    _prefixed("postman-api-key", "Postman API key", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}", ["pmak-"]),
    _prefixed("linear-api-key", "Linear API key", r"lin_api_[A-Za-z0-9]{40}", ["lin_api_"]),
    _prefixed("notion-token", "Notion integration token", r"(?:secret_[A-Za-z0-9]{43}|ntn_\d{11}[A-Za-z0-9]{35})",
              ["secret_", "ntn_"], entropy=3.5, anchored=True),
    _prefixed("airtable-pat", "Airtable personal access token", r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}", ["pat"]),
    _prefixed("grafana-cloud-token", "Grafana Cloud API token", r"glc_[A-Za-z0-9+/]{32,400}={0,2}", ["glc_"]),
    _prefixed("grafana-service-account-token", "Grafana service account token", r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}", ["glsa_"]),
    _prefixed("grafana-api-key", "Grafana API key (legacy)", r"eyJrIjoi[A-Za-z0-9+/]{50,400}={0,2}", ["eyjrijoi"]),
    _prefixed("sentry-auth-token", "Sentry org/user auth token", r"sntry[su]_[A-Za-z0-9+/=_\-]{40,}", ["sntrys_", "sntryu_"]),
    rule("sentry-dsn", "Sentry DSN key",
         r"://(?P<secret>[a-fA-F0-9]{32})(?::[a-fA-F0-9]{32})?@[A-Za-z0-9.\-]+(?::\d+)?/\d+", ["://"],
         validator=url_scheme(("http", "https"))),
    _prefixed("newrelic-user-api-key", "New Relic user API key", r"NRAK-[A-Z0-9]{27}", ["nrak-"]),
    _prefixed("newrelic-insert-key", "New Relic insights insert key", r"NRII-[A-Za-z0-9_\-]{32}", ["nrii-"]),
    _prefixed("newrelic-browser-key", "New Relic browser API key", r"NRJS-[a-f0-9]{19}", ["nrjs-"]),
    _prefixed("newrelic-license-key", "New Relic ingest license key", r"[a-fA-F0-9]{36}NRAL", ["nral"], anchored=True, anchor_back=(36,)),
    rule("datadog-api-key", "Datadog API or application key assigned to a datadog/dd name",
         r"(?i)(?:datadog|(?<![a-z])dd)[\w.\-]{0,25}?key" + ASSIGN + r"(?P<secret>[a-f0-9]{32}(?:[a-f0-9]{8})?)(?![a-f0-9])",
         ["datadog", "dd"], entropy=3.0, anchored=True),
    rule("okta-api-token", "Okta API token assigned to an okta name",
         r"(?i)okta[\w.\-]{0,25}?" + ASSIGN + r"(?-i:(?P<secret>00[A-Za-z0-9_\-]{40}))" + RD, ["okta"], entropy=3.5, anchored=True),
    _prefixed("onepassword-service-token", "1Password service account token", r"ops_eyJ[A-Za-z0-9+/=_\-]{100,}", ["ops_eyj"]),
    _prefixed("langsmith-api-key", "LangSmith API key", r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}", ["lsv2_"]),
    _prefixed("prefect-api-key", "Prefect API key", r"pnu_[A-Za-z0-9]{36}", ["pnu_"]),
    _prefixed("readme-api-key", "ReadMe API key", r"rdme_[a-z0-9]{70}", ["rdme_"]),
]

AI = [
    _prefixed("openai-api-key", "OpenAI API key (sk-, sk-proj-, sk-svcacct-, sk-admin-)",
              r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{48})",
              ["sk-"], entropy=3.5),
    _prefixed("anthropic-api-key", "Anthropic API key (sk-ant-)", r"sk-ant-[A-Za-z0-9_\-]{40,}", ["sk-ant-"], entropy=3.5),
    _prefixed("huggingface-token", "Hugging Face access token", r"(?:hf_|api_org_)[A-Za-z0-9]{34}", ["hf_", "api_org_"], entropy=3.5, anchored=True),
    _prefixed("groq-api-key", "Groq API key", r"gsk_[A-Za-z0-9]{52}", ["gsk_"]),
    _prefixed("perplexity-api-key", "Perplexity API key", r"pplx-[A-Za-z0-9]{48}", ["pplx-"]),
    _prefixed("xai-api-key", "xAI API key", r"xai-[A-Za-z0-9]{80}", ["xai-"]),
    _prefixed("replicate-api-token", "Replicate API token", r"r8_[A-Za-z0-9]{37}", ["r8_"]),
]

MESSAGING_AND_PAYMENTS = [
    _prefixed("slack-bot-token", "Slack bot token", r"xoxb-[0-9]{10,13}-[0-9]{10,13}[A-Za-z0-9\-]*", ["xoxb-"]),
    _prefixed("slack-user-token", "Slack user token", r"xox[pe](?:-[0-9]{10,13}){3}-[A-Za-z0-9\-]{28,34}", ["xoxp-", "xoxe-"]),
    _prefixed("slack-app-token", "Slack app-level token", r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+", ["xapp-"]),
    _prefixed("slack-legacy-token", "Slack legacy / workspace token", r"xox[aors]-[A-Za-z0-9\-]{10,}",
              ["xoxa-", "xoxo-", "xoxr-", "xoxs-"], entropy=3.0),
    _prefixed("slack-config-token", "Slack configuration token", r"xoxe\.xox[bp]-\d-[A-Z0-9]{150,}", ["xoxe."]),
    rule("slack-webhook-url", "Slack incoming webhook URL",
         r"(?P<secret>https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{20,})",
         ["https://hooks.slack.com", "http://hooks.slack.com"], anchored=True),
    rule("discord-webhook-url", "Discord webhook URL",
         r"(?P<secret>https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/webhooks/\d{15,21}/[A-Za-z0-9_\-]{60,68})",
         ["discord"]),
    rule("discord-bot-token", "Discord bot token (base64 bot id . timestamp . hmac)",
         r"(?P<secret>[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40})" + RD,
         validator=discord_bot_token, left_edge=True),
    rule("telegram-bot-token", "Telegram bot token",
         r"(?<![\w:])(?P<secret>\d{8,10}:AA[A-Za-z0-9_\-]{33})" + RD, [":aa"], anchored=True, anchor_back=(8, 9, 10)),
    rule("microsoft-teams-webhook", "Microsoft Teams incoming webhook URL",
         r"(?P<secret>https://[a-z0-9\-]+\.webhook\.office\.com/webhookb2/[^\s\"'<>]{60,})", ["webhook.office.com"]),
    _prefixed("twilio-api-key", "Twilio API key SID", r"SK[0-9a-fA-F]{32}", [], entropy=3.0),
    _prefixed("twilio-account-sid", "Twilio account SID", r"AC[a-f0-9]{32}", [], entropy=3.0, score=0.6),
    _prefixed("sendgrid-api-key", "SendGrid API key", r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}", ["sg."]),
    _prefixed("brevo-api-key", "Brevo (Sendinblue) API key", r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}", ["xkeysib-"]),
    _prefixed("mailgun-api-key", "Mailgun private API key", r"key-[0-9a-f]{32}", ["key-"], entropy=3.0),
    _prefixed("mailchimp-api-key", "Mailchimp API key", r"[0-9a-f]{32}-us\d{1,2}", ["-us"], entropy=3.0, anchored=True, anchor_back=(32,)),
    _prefixed("stripe-secret-key", "Stripe secret key", r"sk_(?:live|test|prod)_[A-Za-z0-9]{10,99}", ["sk_"], entropy=3.0),
    _prefixed("stripe-restricted-key", "Stripe restricted key", r"rk_(?:live|test|prod)_[A-Za-z0-9]{10,99}", ["rk_"], entropy=3.0),
    _prefixed("stripe-publishable-key", "Stripe live publishable key (not secret, but ties data to an account)",
              r"pk_live_[A-Za-z0-9]{10,99}", ["pk_live_"], entropy=3.0, score=0.5),
    _prefixed("stripe-webhook-secret", "Stripe webhook signing secret", r"whsec_[A-Za-z0-9]{32,}", ["whsec_"]),
    _prefixed("square-access-token", "Square access token", r"(?:EAAA[A-Za-z0-9_\-]{60}|sq0atp-[A-Za-z0-9_\-]{22})",
              ["eaaa", "sq0atp-"], entropy=3.0, anchored=True),
    _prefixed("square-oauth-secret", "Square OAuth secret", r"sq0csp-[A-Za-z0-9_\-]{43}", ["sq0csp-"]),
    rule("paypal-braintree-access-token", "PayPal Braintree access token",
         r"(?P<secret>access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32})", ["access_token$production$"], anchored=True),
    _prefixed("shopify-access-token", "Shopify access token (custom/private/admin app)",
              r"shp(?:at|ca|pa)_[a-fA-F0-9]{32}", ["shpat_", "shpca_", "shppa_"]),
    _prefixed("shopify-shared-secret", "Shopify app shared secret", r"shpss_[a-fA-F0-9]{32}", ["shpss_"]),
    _prefixed("shippo-api-token", "Shippo API token", r"shippo_(?:live|test)_[a-f0-9]{40}", ["shippo_"]),
    _prefixed("easypost-api-key", "EasyPost API key", r"EZ[AT]K[A-Za-z0-9]{54}", ["ezak", "eztk"]),
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
    rule("pem-private-key", "PEM private key block (RSA, EC, DSA, PKCS#8, encrypted)",
         r"-----BEGIN (?P<kind>(?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----"
         r"(?:[\s\S]{16,20000}?-----END (?P=kind)-----|[A-Za-z0-9+/=\s\\:,\-]{40,20000})",
         ["private key-----"]),
    rule("openssh-private-key", "OpenSSH private key block",
         r"-----BEGIN OPENSSH PRIVATE KEY-----(?:[\s\S]{16,20000}?-----END OPENSSH PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]{40,20000})",
         ["begin openssh private key"]),
    rule("pgp-private-key", "PGP private key block",
         r"-----BEGIN PGP PRIVATE KEY BLOCK-----(?:[\s\S]{16,40000}?-----END PGP PRIVATE KEY BLOCK-----|[A-Za-z0-9+/=\s\\:]{40,40000})",
         ["begin pgp private key block"]),
    rule("putty-private-key", "PuTTY private key file",
         r"PuTTY-User-Key-File-\d: [\s\S]{16,8000}?Private-MAC: [0-9a-f]{40,64}", ["putty-user-key-file"]),
    _prefixed("age-secret-key", "age encryption secret key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", ["age-secret-key-1"]),
    rule("database-url-password", "Password inside a database / broker connection URL",
         URL_CREDENTIALS, ["://"], validator=url_password(DATABASE_SCHEMES)),
    rule("url-basic-auth", "user:password embedded in any URL",
         URL_CREDENTIALS, ["://"], validator=url_password(), priority=SEMI_GENERIC),
    rule("http-basic-auth", "HTTP Basic credentials (base64 user:password)",
         r"(?i)(?<![\w-])basic[ \t]+(?P<secret>[A-Za-z0-9+/]{8,}={0,2})(?![\w+/=])",
         ["basic"], validator=basic_credentials, priority=SEMI_GENERIC, anchored=True),
    rule("http-bearer-token", "HTTP Bearer token",
         r"(?i)(?<![\w-])bearer[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]{16,}=*)",
         ["bearer"], validator=random_value, priority=SEMI_GENERIC, anchored=True),
    rule("curl-user-password", "Password given to curl -u / --user",
         r"(?<![\w-])(?:-u|--user)[ \t]+(?P<q>[\"']?)[^\s:\"']{1,64}:(?P<secret>[^\s\"'@]{1,128})(?P=q)(?=[\s;|&)]|$)",
         ["-u", "--user"], validator=password_value, priority=SEMI_GENERIC, anchored=True),
]

SERVICE_RULES: list[Rule] = CLOUD + CODE_HOSTING + AI + MESSAGING_AND_PAYMENTS + KEYS_AND_URLS
