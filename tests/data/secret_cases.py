"""Table of secret-detector cases: per rule, texts that must and must not match.

Every value is generated here from a fixed seed: format-valid, random-looking,
and not a real credential.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass

_rng = random.Random(20240611)

LOWER = string.ascii_lowercase
UPPER = string.ascii_uppercase
DIGITS = string.digits
ALNUM = string.ascii_letters + DIGITS
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


def rand(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def uuid4() -> str:
    h = rand(HEX, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


@dataclass(frozen=True)
class Hit:
    """`text` must yield a finding of `rule` covering exactly `value`."""

    rule: str
    text: str
    value: str


@dataclass(frozen=True)
class Miss:
    """`text` must not yield any finding of `rule`."""

    rule: str
    text: str


def _hit(rule: str, template: str, value: str) -> Hit:
    return Hit(rule, template.format(v=value), value)


def _jwt() -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": rand(DIGITS, 10), "name": "Test User", "iat": 1700000000}).encode())
    return f"{header}.{payload}.{rand(URLSAFE, 43)}"


def _pem(kind: str) -> str:
    body = "\n".join(rand(B64, 64) for _ in range(6))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


def _pem_hit(kind: str, template: str = "{v}", newline: str = "\n") -> Hit:
    """A PEM block in `template`: the key material between the armour lines is the secret."""
    body = newline.join(rand(B64, 64) for _ in range(6))
    block = f"-----BEGIN {kind}-----{newline}{body}{newline}-----END {kind}-----"
    return Hit("pem-private-key", template.replace("{v}", block).replace("{{", "{").replace("}}", "}"), body)


def _discord() -> str:
    bot_id = base64.b64encode(rand(DIGITS, 18).encode()).decode()
    return f"{bot_id}.{rand(URLSAFE, 6)}.{rand(URLSAFE, 38)}"


def _basic() -> str:
    return base64.b64encode(f"svc-user:{rand(ALNUM, 14)}".encode()).decode()


GITHUB_PAT = "ghp_" + rand(ALNUM, 36)

HITS: list[Hit] = [
    _hit("aws-access-key-id", "AWS_ACCESS_KEY_ID={v}", "AKIA" + rand(UPPER + "234567", 16)),
    _hit("aws-access-key-id", "role creds: {v} (temporary)", "ASIA" + rand(UPPER + "234567", 16)),
    _hit("aws-secret-access-key", "aws_secret_access_key = {v}", rand(ALNUM + "/+", 40)),
    _hit("aws-session-token", 'AWS_SESSION_TOKEN="{v}"', rand(B64, 160)),
    _hit("aws-mws-key", "mws: {v}", "amzn.mws." + uuid4()),
    _hit("gitleaks:gcp-api-key", "const key = '{v}';", "AIza" + rand(URLSAFE, 35)),
    _hit("gcp-service-account", '{{"type": "service_account", "private_key_id": "{v}"}}', rand(HEX, 40)),
    _hit("gcp-oauth-client-secret", "client_secret: {v}", "GOCSPX-" + rand(URLSAFE, 28)),
    _hit("google-oauth-access-token", "token {v}", "ya29." + rand(URLSAFE, 60)),
    _hit("google-oauth-refresh-token", "refresh={v}", "1//0" + rand(URLSAFE, 60)),
    _hit("azure-storage-connection-string",
         "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={v};EndpointSuffix=core.windows.net",
         rand(B64, 86) + "=="),
    _hit("azure-shared-access-key", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={v}",
         rand(B64, 43) + "="),
    _hit("azure-storage-account-key", 'azure_storage_key = "{v}"', rand(B64, 86) + "=="),
    _hit("azure-sas-token", "https://acct.blob.core.windows.net/c?sv=2021-06-08&ss=b&sp=rl&se=2030-01-01&sig={v}",
         rand(ALNUM, 43) + "%3D"),
    _hit("gitleaks:azure-ad-client-secret", 'AZURE_CLIENT_SECRET="{v}"', rand(ALNUM, 3) + "8Q~" + rand(ALNUM + "_~.", 34)),
    _hit("gitleaks:alibaba-access-key-id", "ak={v}", "LTAI" + rand(ALNUM, 20)),
    _hit("gitleaks:digitalocean-pat", "DO={v}", "dop_v1_" + rand(HEX, 64)),
    _hit("gitleaks:heroku-api-key", "HEROKU_API_KEY={v}", uuid4()),
    _hit("heroku-platform-token", "t: {v}", "HRKU-" + rand(URLSAFE, 60)),
    _hit("gitleaks:cloudflare-origin-ca-key", "ca = {v}", "v1.0-" + rand(HEX, 24) + "-" + rand(HEX, 146)),
    _hit("gitleaks:databricks-api-token", "DATABRICKS={v}", "dapi" + rand(HEX, 32)),
    _hit("gitleaks:hashicorp-tf-api-token", 'token = "{v}"', rand(ALNUM, 14) + ".atlasv1." + rand(URLSAFE, 67)),
    _hit("gitleaks:vault-service-token", "VAULT_TOKEN={v}", "hvs." + rand(URLSAFE, 90)),
    _hit("gitleaks:pulumi-api-token", "PULUMI={v}", "pul-" + rand(HEX, 40)),
    _hit("doppler-token", "DOPPLER={v}", "dp.st." + rand(ALNUM, 43)),
    _hit("gitleaks:flyio-access-token", "fly {v}", "fo1_" + rand(URLSAFE, 43)),
    _hit("tailscale-key", "TS_AUTHKEY={v}", "tskey-auth-k" + rand(ALNUM, 10) + "-" + rand(ALNUM, 30)),
    _hit("supabase-token", "sb={v}", "sbp_" + rand(HEX, 40)),
    _hit("gitleaks:planetscale-api-token", "ps={v}", "pscale_tkn_" + rand(URLSAFE, 43)),
    _hit("gitleaks:dynatrace-api-token", "dt={v}", "dt0c01." + rand(UPPER + DIGITS, 24) + "." + rand(UPPER + DIGITS, 64)),
    _hit("gitleaks:github-pat", "export GITHUB_TOKEN={v}", GITHUB_PAT),
    _hit("gitleaks:github-oauth", "auth {v}", "gho_" + rand(ALNUM, 36)),
    _hit("gitleaks:github-app-token", "x {v} y", "ghu_" + rand(ALNUM, 36)),
    _hit("gitleaks:github-app-token", "x {v} y", "ghs_" + rand(ALNUM, 36)),
    _hit("github-refresh-token", "x {v} y", "ghr_" + rand(ALNUM, 76)),
    _hit("gitleaks:github-fine-grained-pat", "x {v} y", "github_pat_" + rand(ALNUM, 22) + "_" + rand(ALNUM, 59)),
    _hit("gitleaks:gitlab-pat", "GITLAB_TOKEN={v}", "glpat-" + rand(URLSAFE, 20)),
    _hit("gitleaks:gitlab-ptt", "t={v}", "glptt-" + rand(HEX, 40)),
    _hit("gitlab-pipeline-trigger-token", "t={v}", "glptt-" + rand(URLSAFE, 40)),
    _hit("gitleaks:gitlab-rrt", "t={v}", "GR1348941" + rand(URLSAFE, 20)),
    _hit("gitleaks:gitlab-runner-authentication-token", "t={v}", "glrt-" + rand(URLSAFE, 20)),
    _hit("gitleaks:gitlab-deploy-token", "t={v}", "gldt-" + rand(URLSAFE, 20)),
    _hit("gitlab-token", "t={v}", "glft-" + rand(URLSAFE, 20)),
    _hit("bitbucket-app-password", "bb {v}", "ATBB" + rand(ALNUM, 32)),
    _hit("gitleaks:bitbucket-client-id", 'bitbucket_client_secret = "{v}"', rand(ALNUM, 32)),
    _hit("gitleaks:atlassian-api-token", "JIRA_API_TOKEN={v}", "ATATT3" + rand(URLSAFE, 186)),
    _hit("gitleaks:npm-access-token", "//registry.npmjs.org/:_authToken={v}", "npm_" + rand(ALNUM, 36)),
    _hit("pypi-token", "password = {v}", "pypi-AgEIcHlwaS5vcmc" + rand(URLSAFE, 160)),
    _hit("gitleaks:rubygems-api-token", "k={v}", "rubygems_" + rand(HEX, 48)),
    _hit("docker-hub-pat", "docker login -p {v}", "dckr_pat_" + rand(URLSAFE, 27)),
    _hit("circleci-token", "t={v}", "CCIPAT_" + rand(ALNUM, 22) + "_" + rand(HEX, 40)),
    _hit("buildkite-token", "t={v}", "bkua_" + rand(HEX, 40)),
    _hit("gitleaks:postman-api-token", "t={v}", "PMAK-" + rand(HEX, 24) + "-" + rand(HEX, 34)),
    _hit("gitleaks:linear-api-key", "t={v}", "lin_api_" + rand(ALNUM, 40)),
    _hit("gitleaks:notion-api-token", "t={v}", "ntn_" + rand(DIGITS, 11) + rand(ALNUM, 35)),
    _hit("airtable-pat", "t={v}", "pat" + rand(ALNUM, 14) + "." + rand(HEX, 64)),
    _hit("gitleaks:grafana-cloud-api-token", "t={v}", "glc_" + rand(ALNUM, 60) + "=="),
    _hit("gitleaks:grafana-service-account-token", "t={v}", "glsa_" + rand(ALNUM, 32) + "_" + rand(HEX, 8)),
    _hit("gitleaks:grafana-api-key", "t={v}", "eyJrIjoi" + rand(ALNUM, 70) + "="),
    _hit("sentry-auth-token", "t={v}", "sntrys_eyJ" + rand(ALNUM, 80)),
    _hit("sentry-dsn", "SENTRY_DSN=https://{v}@o123.ingest.sentry.io/456", rand(HEX, 32)),
    _hit("newrelic-user-api-key", "t={v}", "NRAK-" + rand(UPPER + DIGITS, 27)),
    _hit("newrelic-insert-key", "t={v}", "NRII-" + rand(URLSAFE, 32)),
    _hit("newrelic-browser-key", "t={v}", "NRJS-" + rand(HEX, 19)),
    _hit("newrelic-license-key", "t={v}", rand(HEX, 36) + "NRAL"),
    _hit("datadog-api-key", "DD_API_KEY={v}", rand(HEX, 32)),
    _hit("gitleaks:okta-access-token", "okta_api_token: {v}", "00" + rand(URLSAFE, 40)),
    _hit("onepassword-service-token", "OP_SERVICE_ACCOUNT_TOKEN={v}", "ops_eyJ" + rand(B64, 200)),
    _hit("langsmith-api-key", "t={v}", "lsv2_pt_" + rand(HEX, 32) + "_" + rand(HEX, 10)),
    _hit("gitleaks:prefect-api-token", "t={v}", "pnu_" + rand(ALNUM, 36)),
    _hit("gitleaks:readme-api-token", "t={v}", "rdme_" + rand(LOWER + DIGITS, 70)),
    _hit("openai-api-key", "OPENAI_API_KEY={v}", "sk-proj-" + rand(URLSAFE, 74) + "T3BlbkFJ" + rand(URLSAFE, 74)),
    _hit("openai-api-key", "key: {v}", "sk-" + rand(ALNUM, 20) + "T3BlbkFJ" + rand(ALNUM, 20)),
    _hit("gitleaks:anthropic-api-key", "ANTHROPIC_API_KEY={v}", "sk-ant-api03-" + rand(URLSAFE, 93) + "AA"),
    _hit("gitleaks:huggingface-access-token", "HF_TOKEN={v}", "hf_" + rand(string.ascii_letters, 34)),
    _hit("groq-api-key", "t={v}", "gsk_" + rand(ALNUM, 52)),
    _hit("gitleaks:perplexity-api-key", "t={v}", "pplx-" + rand(ALNUM, 48)),
    _hit("xai-api-key", "t={v}", "xai-" + rand(ALNUM, 80)),
    _hit("replicate-api-token", "t={v}", "r8_" + rand(ALNUM, 37)),
    _hit("gitleaks:slack-bot-token", "SLACK_BOT_TOKEN={v}", f"xoxb-{rand(DIGITS, 12)}-{rand(DIGITS, 13)}-{rand(ALNUM, 24)}"),
    _hit("gitleaks:slack-user-token", "t={v}",
         f"xoxp-{rand(DIGITS, 12)}-{rand(DIGITS, 12)}-{rand(DIGITS, 13)}-{rand(HEX, 32)}"),
    _hit("gitleaks:slack-app-token", "t={v}", f"xapp-1-A{rand(UPPER + DIGITS, 10)}-{rand(DIGITS, 13)}-{rand(HEX, 64)}"),
    _hit("slack-token", "t={v}", "xoxp-523423-234243-234233-" + rand(HEX, 18)),
    _hit("slack-token", "{v}", f"xoxb-{rand(DIGITS, 8)}-{rand(DIGITS, 9)}-{rand(HEX, 12)}"),
    _hit("slack-legacy-token", "t={v}", f"xoxs-{rand(DIGITS, 10)}-{rand(ALNUM, 20)}"),
    _hit("gitleaks:slack-config-access-token", "t={v}", "xoxe.xoxp-1-" + rand(UPPER + DIGITS, 163)),
    _hit("slack-webhook-url", "url: {v}",
         f"https://hooks.slack.com/services/T{rand(UPPER + DIGITS, 8)}/B{rand(UPPER + DIGITS, 8)}/{rand(ALNUM, 24)}"),
    _hit("discord-webhook-url", "hook={v}", f"https://discord.com/api/webhooks/{rand(DIGITS, 18)}/{rand(URLSAFE, 68)}"),
    _hit("discord-bot-token", "client.run('{v}')", _discord()),
    _hit("telegram-bot-token", "BOT={v}", f"{rand(DIGITS, 10)}:AA{rand(URLSAFE, 33)}"),
    _hit("microsoft-teams-webhook", "hook: {v}",
         f"https://acme.webhook.office.com/webhookb2/{uuid4()}@{uuid4()}/IncomingWebhook/{rand(HEX, 32)}/{uuid4()}"),
    _hit("gitleaks:twilio-api-key", "TWILIO_KEY_SID={v}", "SK" + rand(HEX, 32)),
    _hit("twilio-account-sid", "sid {v}", "AC" + rand(HEX, 32)),
    _hit("gitleaks:sendgrid-api-token", "SENDGRID={v}", f"SG.{rand(URLSAFE, 22)}.{rand(URLSAFE, 43)}"),
    _hit("gitleaks:sendinblue-api-token", "t={v}", f"xkeysib-{rand(HEX, 64)}-{rand(ALNUM, 16)}"),
    _hit("gitleaks:mailgun-private-api-token", "MAILGUN={v}", "key-" + rand(HEX, 32)),
    _hit("mailchimp-api-key", "MC={v}", rand(HEX, 32) + "-us14"),
    _hit("gitleaks:stripe-access-token", "stripe.api_key = '{v}'", "sk_live_" + rand(ALNUM, 24)),
    _hit("gitleaks:stripe-access-token", "k={v}", "rk_live_" + rand(ALNUM, 24)),
    _hit("stripe-webhook-secret", "k={v}", "whsec_" + rand(ALNUM, 32)),
    _hit("stripe-webhook-secret", "signing secret is {v} - please", "whsec_" + rand(ALNUM, 24)),
    _hit("mysql-cli-password", "mysql -h 10.0.0.2 -u root -p'{v}' customers", "Sup3rS3cret#DB"),
    _hit("mysql-cli-password", "mysqldump -uadmin -p{v} shop > dump.sql", "Xk82!mq0Lw"),
    _hit("gitleaks:square-access-token", "k={v}", "EAAA" + rand(URLSAFE, 60)),
    _hit("square-oauth-secret", "k={v}", "sq0csp-" + rand(URLSAFE, 43)),
    _hit("paypal-braintree-access-token", "k={v}", f"access_token$production${rand(LOWER + DIGITS, 16)}${rand(HEX, 32)}"),
    _hit("gitleaks:shopify-access-token", "k={v}", "shpat_" + rand(HEX, 32)),
    _hit("gitleaks:shopify-shared-secret", "k={v}", "shpss_" + rand(HEX, 32)),
    _hit("gitleaks:shippo-api-token", "k={v}", "shippo_live_" + rand(HEX, 40)),
    _hit("gitleaks:easypost-api-token", "k={v}", "EZAK" + rand(ALNUM, 54)),
    _hit("facebook-access-token", "k={v}", "EAAB" + rand(ALNUM, 150)),
    _hit("twitter-bearer-token", "k={v}", "A" * 22 + rand(ALNUM, 80)),
    _hit("mapbox-secret-token", "k={v}", "sk.eyJ" + rand(URLSAFE, 60) + "." + rand(URLSAFE, 22)),
    _hit("firebase-cloud-messaging-key", "k={v}", "AAAA" + rand(URLSAFE, 7) + ":APA91b" + rand(URLSAFE, 134)),
    _hit("dropbox-token", "k={v}", "sl." + rand(URLSAFE, 135)),
    _hit("jwt", "Cookie: session={v}; Path=/", _jwt()),
    _pem_hit("RSA PRIVATE KEY", "key:\n{v}\n"),
    _pem_hit("ENCRYPTED PRIVATE KEY"),
    _hit("pem-private-key", "pasted:\n-----BEGIN PRIVATE KEY-----\n{v}\n\nthanks", "MIIEvQIBADAN|BgkqhkiG9w0B AQEFAASC"),
    _pem_hit("PRIVATE KEY", '{{"private_key": "{v}\\n"}}', newline="\\n"),
    _hit("gitleaks:private-key", "{v}", _pem("OPENSSH PRIVATE KEY")),
    _hit("gitleaks:private-key", "{v}", _pem("PGP PRIVATE KEY BLOCK")),
    _hit("putty-private-key", "{v}",
         "PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nPrivate-Lines: 1\n" + rand(B64, 64)
         + "\nPrivate-MAC: " + rand(HEX, 40)),
    _hit("gitleaks:age-secret-key", "# created\n{v}\n", "AGE-SECRET-KEY-1" + rand(BECH32, 58)),
    _hit("database-url-password", "DATABASE_URL=postgres://app:{v}@db.internal:5432/prod", "s3cr3t-" + rand(ALNUM, 8)),
    _hit("database-url-password", "MONGO=mongodb+srv://root:{v}@cluster0.x.mongodb.net", rand(ALNUM, 16)),
    _hit("database-url-password", "redis://:{v}@cache:6379/0", rand(ALNUM, 16)),
    _hit("url-basic-auth", "git clone https://deploy:{v}@git.example.org/repo.git", rand(ALNUM, 16)),
    _hit("http-basic-auth", "Authorization: Basic {v}", _basic()),
    _hit("http-bearer-token", "Authorization: Bearer {v}", rand(ALNUM, 40)),
    _hit("curl-user-password", "curl -u admin:{v} https://api.test", "Pa55-" + rand(ALNUM, 6)),
    _hit("generic-api-key", "ACME_API_KEY={v}", rand(ALNUM, 32)),
    _hit("generic-api-key", '{{"apiKey": "{v}"}}', rand(ALNUM, 24)),
    _hit("generic-api-key", "auth_token: {v}", rand(HEX, 40)),
    _hit("generic-api-key", "client_secret = '{v}'", rand(URLSAFE, 30)),
    _hit("generic-api-key", 'headers["X-Api-Key"] = "{v}"', rand(ALNUM, 28)),
    _hit("generic-api-key", "X-API-Key: {v}", rand(ALNUM, 28)),
    _hit("generic-api-key", "tool --api-token {v} --verbose", rand(ALNUM, 28)),
    _hit("generic-api-key", '<add key="PaymentsApiKey" value="{v}" />', rand(ALNUM, 20)),
    _hit("generic-api-key", "<secretKey>{v}</secretKey>", rand(ALNUM, 20)),
    _hit("generic-api-key", "acme.secret_key := \"{v}\"", uuid4()),
    _hit("generic-password", "password: {v}", "hunter2!"),
    _hit("generic-password", "DB_PASSWORD={v}", "Tr0ub4dor&3"),
    _hit("generic-password", '"pwd": "{v}"', "s3cret-pass"),
    _hit("generic-password", "<password>{v}</password>", "Sup3r$ecret"),
    _hit("generic-password", "mysql --password {v} app", "Pa55w0rd!"),
    _hit("generic-password", "[db]\nuser = app\npasswd = {v}\n", "q9!vT2#m"),
]

# One format-adjacent miss per rule: wrong length, wrong prefix, placeholder.
MISSES: list[Miss] = [
    Miss("aws-access-key-id", "AWS_ACCESS_KEY_ID=AKIAXXXXXXXXXXXXXXXX"),
    Miss("aws-access-key-id", "key AKIA" + rand(UPPER, 10) + " is too short"),
    Miss("aws-secret-access-key", "aws_secret_access_key = " + rand(ALNUM, 30)),
    Miss("aws-session-token", "AWS_SESSION_TOKEN=" + rand(ALNUM, 40)),
    Miss("aws-mws-key", "amzn.mws.not-a-uuid"),
    Miss("gitleaks:gcp-api-key", "AIza" + rand(ALNUM, 20)),
    Miss("gcp-service-account", '{"type": "service_account", "private_key_id": "abc"}'),
    Miss("gcp-oauth-client-secret", "GOCSPX-short"),
    Miss("google-oauth-access-token", "ya29.short"),
    Miss("google-oauth-refresh-token", "path 1//0abc"),
    Miss("azure-storage-connection-string", "AccountKey=" + rand(B64, 40) + "=="),
    Miss("azure-shared-access-key", "SharedAccessKey=<your-key>"),
    Miss("azure-storage-account-key", "azure_storage_key = " + rand(B64, 40)),
    Miss("azure-sas-token", "https://example.test/img?size=2&sig=" + rand(ALNUM, 43)),
    Miss("gitleaks:azure-ad-client-secret", "the tilde Q~ appears in prose"),
    Miss("gitleaks:alibaba-access-key-id", "LTAI" + rand(ALNUM, 8)),
    Miss("gitleaks:digitalocean-pat", "dop_v1_" + rand(HEX, 20)),
    Miss("gitleaks:heroku-api-key", "heroku_app_name = my-app"),
    Miss("heroku-platform-token", "HRKU-short"),
    Miss("gitleaks:cloudflare-origin-ca-key", "v1.0-" + rand(HEX, 24)),
    Miss("gitleaks:databricks-api-token", "dapi" + rand(HEX, 10)),
    Miss("gitleaks:hashicorp-tf-api-token", "x.atlasv1.short"),
    Miss("gitleaks:vault-service-token", "hvs.short"),
    Miss("gitleaks:pulumi-api-token", "pul-" + rand(HEX, 10)),
    Miss("doppler-token", "dp.st.short"),
    Miss("gitleaks:flyio-access-token", "fo1_short"),
    Miss("tailscale-key", "tskey-auth-short"),
    Miss("supabase-token", "sbp_" + rand(HEX, 10)),
    Miss("gitleaks:planetscale-api-token", "pscale_tkn_short"),
    Miss("gitleaks:dynatrace-api-token", "dt0c01.SHORT.SHORT"),
    Miss("gitleaks:github-pat", "ghp_" + rand(ALNUM, 20)),
    Miss("gitleaks:github-pat", "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    Miss("gitleaks:github-oauth", "gho_" + rand(ALNUM, 20)),
    Miss("gitleaks:github-app-token", "ghu_" + rand(ALNUM, 20)),
    Miss("gitleaks:github-app-token", "ghs_" + rand(ALNUM, 20)),
    Miss("github-refresh-token", "ghr_" + rand(ALNUM, 20)),
    Miss("gitleaks:github-fine-grained-pat", "github_pat_" + rand(ALNUM, 20)),
    Miss("gitleaks:gitlab-pat", "glpat-" + rand(ALNUM, 10)),
    Miss("gitleaks:gitlab-ptt", "glptt-" + rand(HEX, 10)),
    Miss("gitlab-pipeline-trigger-token", "glptt-" + rand(URLSAFE, 30)),
    Miss("gitleaks:gitlab-rrt", "GR1348941short"),
    Miss("gitleaks:gitlab-runner-authentication-token", "glrt-short"),
    Miss("gitleaks:gitlab-deploy-token", "gldt-short"),
    Miss("gitlab-token", "glft-short"),
    Miss("bitbucket-app-password", "ATBB-short"),
    Miss("gitleaks:bitbucket-client-id", "bitbucket_client_secret = short"),
    Miss("gitleaks:atlassian-api-token", "ATATT3" + rand(ALNUM, 20)),
    Miss("gitleaks:npm-access-token", "npm_" + rand(ALNUM, 10)),
    Miss("pypi-token", "pypi-AgEIcHlwaS5vcmcshort"),
    # Cut before the macaroon's signature.
    Miss("pypi-token", "pypi-AgEIcHlwaS5vcmc" + rand(URLSAFE, 70)),
    Miss("gitleaks:rubygems-api-token", "rubygems_" + rand(HEX, 10)),
    Miss("docker-hub-pat", "dckr_pat_short"),
    Miss("circleci-token", "CCIPAT_short"),
    Miss("buildkite-token", "bkua_" + rand(HEX, 10)),
    Miss("gitleaks:postman-api-token", "PMAK-" + rand(HEX, 10)),
    Miss("gitleaks:linear-api-key", "lin_api_short"),
    Miss("gitleaks:notion-api-token", "secret_" + rand(ALNUM, 10)),
    Miss("airtable-pat", "the pattern.matches(x)"),
    Miss("gitleaks:grafana-cloud-api-token", "glc_short"),
    Miss("gitleaks:grafana-service-account-token", "glsa_short"),
    Miss("gitleaks:grafana-api-key", "eyJrIjoishort"),
    Miss("sentry-auth-token", "sntrys_short"),
    Miss("sentry-dsn", "ftp://" + rand(HEX, 32) + "@files.example.org/1"),
    Miss("newrelic-user-api-key", "NRAK-short"),
    Miss("newrelic-insert-key", "NRII-short"),
    Miss("newrelic-browser-key", "NRJS-short"),
    Miss("newrelic-license-key", rand(HEX, 10) + "NRAL"),
    Miss("datadog-api-key", "dd_api_key = " + rand(HEX, 16)),
    Miss("gitleaks:okta-access-token", "okta_domain = dev-123.okta.com"),
    Miss("onepassword-service-token", "ops_eyJshort"),
    Miss("langsmith-api-key", "lsv2_pt_short"),
    Miss("gitleaks:prefect-api-token", "pnu_short"),
    Miss("gitleaks:readme-api-token", "rdme_short"),
    Miss("openai-api-key", "sk-" + rand(ALNUM, 12)),
    Miss("openai-api-key", "sk-proj-" + rand(ALNUM, 20) + "T4BlbkFJ" + rand(ALNUM, 20)),
    Miss("openai-api-key", "OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    Miss("gitleaks:anthropic-api-key", "sk-ant-short"),
    Miss("gitleaks:huggingface-access-token", "hf_" + rand(ALNUM, 10)),
    Miss("groq-api-key", "gsk_short"),
    Miss("gitleaks:perplexity-api-key", "pplx-short"),
    Miss("xai-api-key", "xai-short"),
    Miss("replicate-api-token", "r8_short"),
    Miss("gitleaks:slack-bot-token", "xoxb-short"),
    Miss("gitleaks:slack-user-token", "xoxp-1-2"),
    Miss("gitleaks:slack-app-token", "xapp-short"),
    Miss("slack-legacy-token", "xoxs-a"),
    Miss("gitleaks:slack-config-access-token", "xoxe.xoxp-1-SHORT"),
    Miss("slack-webhook-url", "see https://hooks.slack.com/ for docs"),
    Miss("discord-webhook-url", "https://discord.com/api/webhooks/123/short"),
    # 23 characters: not the length of today's ids, and not an id in base64 either.
    Miss("discord-bot-token", "M" + rand(ALNUM, 22) + "." + rand(ALNUM, 6) + "." + rand(ALNUM, 30)),
    Miss("telegram-bot-token", "12345678:AAshort"),
    Miss("microsoft-teams-webhook", "https://acme.webhook.office.com/webhookb2/short"),
    Miss("gitleaks:twilio-api-key", "SK" + rand(HEX, 10)),
    Miss("twilio-account-sid", "AC" + rand(HEX, 10)),
    Miss("gitleaks:sendgrid-api-token", "SG.short.short"),
    Miss("gitleaks:sendinblue-api-token", "xkeysib-short"),
    Miss("gitleaks:mailgun-private-api-token", "key-" + rand(HEX, 10)),
    Miss("mailchimp-api-key", rand(HEX, 10) + "-us14"),
    Miss("gitleaks:stripe-access-token", "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx"),
    Miss("gitleaks:stripe-access-token", "rk_live_short"),
    Miss("slack-token", "xoxp-short"),
    Miss("slack-token", "xoxp-1234-xxxxxxxxxxxxxxxx"),
    Miss("stripe-webhook-secret", "whsec_short"),
    Miss("mysql-cli-password", "mysql -h db -u root -p customers"),
    Miss("mysql-cli-password", "mysqldump -p$MYSQL_PWD app"),
    Miss("gitleaks:square-access-token", "EAAA" + rand(ALNUM, 10)),
    Miss("square-oauth-secret", "sq0csp-short"),
    Miss("paypal-braintree-access-token", "access_token$production$short"),
    Miss("gitleaks:shopify-access-token", "shpat_" + rand(HEX, 10)),
    Miss("gitleaks:shopify-shared-secret", "shpss_" + rand(HEX, 10)),
    Miss("gitleaks:shippo-api-token", "shippo_live_short"),
    Miss("gitleaks:easypost-api-token", "EZAKshort"),
    Miss("facebook-access-token", "EAAB" + rand(ALNUM, 20)),
    Miss("twitter-bearer-token", "A" * 30),
    Miss("mapbox-secret-token", "pk.eyJ" + rand(URLSAFE, 60) + "." + rand(URLSAFE, 22)),
    Miss("firebase-cloud-messaging-key", "AAAA:APA91bshort"),
    Miss("dropbox-token", "sl.short"),
    Miss("jwt", "eyJ" + rand(ALNUM, 20) + "." + rand(ALNUM, 20) + "." + rand(ALNUM, 20)),
    Miss("pem-private-key", "-----BEGIN PUBLIC KEY-----\n" + rand(B64, 64) + "\n-----END PUBLIC KEY-----"),
    Miss("gitleaks:private-key", "ssh-ed25519 " + rand(B64, 68) + " me@host"),
    Miss("gitleaks:private-key", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n" + rand(B64, 64)),
    Miss("putty-private-key", "PuTTY-User-Key-File-2: ssh-rsa"),
    Miss("gitleaks:age-secret-key", "age1" + rand(LOWER, 58)),
    Miss("database-url-password", "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/prod"),
    Miss("database-url-password", "postgres://db.internal:5432/prod"),
    Miss("url-basic-auth", "https://user:password@example.org/"),
    Miss("url-basic-auth", "https://example.org:8443/path@v2"),
    Miss("http-basic-auth", "a basic understanding of the system"),
    Miss("http-bearer-token", "Authorization: Bearer <token>"),
    Miss("curl-user-password", "curl -u $USER:$PASS https://api.test"),
    Miss("generic-api-key", 'api_key = "your-api-key-here"'),
    Miss("generic-api-key", "token: the user must supply it"),
    Miss("generic-api-key", "API_TOKEN=${API_TOKEN}"),
    Miss("generic-api-key", "secret: {{ vault_secret }}"),
    Miss("generic-api-key", "token_url: https://auth.example.org/oauth/token"),
    Miss("generic-api-key", "key_file: /etc/ssl/private/server.key"),
    Miss("generic-api-key", "primary_key: customer_id"),
    Miss("generic-api-key", "auth_method = oauthProvider"),
    Miss("generic-api-key", "SECRET_KEY = os.environ['SECRET_KEY']"),
    Miss("generic-api-key", "token = request.headers.get('X-Token')"),
    Miss("generic-api-key", "api_key: null"),
    Miss("generic-api-key", "apiKey: REDACTED"),
    Miss("generic-api-key", "secret = '********'"),
    Miss("generic-api-key", "public_key: " + rand(B64, 60)),
    Miss("generic-api-key", "cache_key = " + rand(ALNUM, 20)),
    Miss("generic-password", "password: changeme"),
    Miss("generic-password", "password = getpass()"),
    Miss("generic-password", "password: None"),
    Miss("generic-password", 'password: "%s"'),
    Miss("generic-password", "password_field: password_input"),
    Miss("generic-password", "passenger_name = Alice"),
    Miss("generic-password", "password=123456"),
    Miss("generic-password", "password: xxxxxxxx"),
    Miss("generic-password", "--password-file /run/secrets/db"),
]

# Ordinary text that must produce no finding at all.
PROSE: list[str] = [
    # Stripe's publishable keys are public by design: they ship in every checkout page.
    "Stripe.js is initialised with pk_live_j5krY8XTgIcDaHDb3YrsAfCl on the checkout page.",
    "The deploy on Tuesday failed; see commit 3f2a9c1b7e4d5f6a8b9c0d1e2f3a4b5c6d7e8f90 for the fix.",
    "Request 123e4567-e89b-12d3-a456-426614174000 timed out after 30 seconds.",
    "sha256 of the tarball is 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 as published.",
    "Please pass the token budget numbers to finance and keep the secret sauce private.",
    "The key takeaway: authentication tokens expire after an hour.",
    "Config lives in /etc/app/secrets.yaml and C:\\Users\\me\\keys\\api.json on Windows.",
    "Use your-api-key-here as a placeholder and replace <token> with the real value.",
    "class AbstractSingletonProxyFactoryBean extends BaseFactoryConfigurationManager {}",
    "Our password policy requires 12 characters; the reset link expires in 15 minutes.",
    "token: string; password: string; apiKey?: string",
    "def authenticate(user, password): return check(user, password)",
    "Visit https://example.org/docs?page=2&lang=en for the API key rotation guide.",
    "We met at 10:30, the meeting id is 847 2910 3341 and the room is B-204.",
]

# Appended last so earlier cases keep their random values: a Slack webhook with a
# short channel id, shorter than gitleaks' rule accepts; ours must still find it.
HITS.append(_hit("slack-webhook-url", "url: {v}",
                 f"https://hooks.slack.com/services/T{rand(UPPER + DIGITS, 8)}/B{rand(DIGITS, 4)}/{rand(ALNUM, 24)}"))

# Formats added from Nosey Parker's rule examples (appended so earlier values stay as they were).
HITS.extend([
    _hit("doppler-token", "DOPPLER_TOKEN={v}", "dp.st.dev." + rand(ALNUM, 43)),
    _hit("newrelic-license-key", "license: {v}", "eu01xx" + rand(HEX, 30) + "NRAL"),
    _hit("salesforce-access-token", "sf session {v}", "00D" + rand(ALNUM, 12) + "!" + rand(ALNUM + "._", 96)),
    _hit("azure-devops-pat", 'ado_pat = "{v}"', rand(LOWER + "234567", 52)),
    _hit("nuget-api-key", "nuget push pkg.nupkg {v} -Source https://api.nuget.org/v3/index.json", "oy2" + rand(LOWER + DIGITS, 43)),
    _hit("dependency-track-api-key", "X-Api-Key: {v}", "odt_" + rand(ALNUM, 32)),
    _hit("codeclimate-reporter-id", "env:\n  CC_TEST_REPORTER_ID: {v}\n", rand(HEX, 64)),
    _hit("sourcegraph-token", "access token {v}<br/>", "sgp_" + rand(HEX, 16) + "_" + rand(HEX, 40)),
    _hit("tavily-api-key", "client = TavilyClient('{v}')", "tvly-" + rand(ALNUM, 32)),
    _hit("microsoft-teams-webhook", "url = '{v}'",
         f"https://outlook.office.com/webhook/{uuid4()}@{uuid4()}/IncomingWebhook/{rand(HEX, 32)}/{uuid4()}"),
    _hit("square-sq0atp-token", "personal access token {v}<br/>", "sq0atp-" + rand(URLSAFE, 22)),
    _hit("twitch-stream-key", "{v}", "live_" + rand(DIGITS, 9) + "_" + rand(ALNUM, 30)),
    _hit("adafruit-io-key", '#define IO_KEY "{v}"', "aio_" + rand(ALNUM, 28)),
    _hit("http-bearer-token", "Authorization: SSWS {v}", "00" + rand(URLSAFE, 40)),
])
MISSES.extend([
    Miss("doppler-token", "dp.st.dev.short"),
    Miss("newrelic-license-key", "eu01xx" + rand(HEX, 10) + "NRAL"),
    Miss("salesforce-access-token", "00D" + rand(ALNUM, 12) + "!short"),
    # Not under a PAT name, and not 52 lower-case characters.
    Miss("azure-devops-pat", 'compat = "' + rand(LOWER + "234567", 52) + '"'),
    Miss("azure-devops-pat", 'ado_pat = "' + rand(ALNUM, 30) + '"'),
    Miss("nuget-api-key", "oy2short"),
    Miss("dependency-track-api-key", "odt_file_name"),
    Miss("codeclimate-reporter-id", "CC_TEST_REPORTER_ID: ${{ secrets.CC_TEST_REPORTER_ID }}"),
    Miss("sourcegraph-token", "sgp_" + rand(HEX, 20)),
    Miss("tavily-api-key", 'TAVILY_API_KEY = "tvly-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"'),
    Miss("microsoft-teams-webhook", "https://outlook.office.com/webhook/short"),
    Miss("square-sq0atp-token", "sq0atp-short"),
    # Too short for a stream key's random part.
    Miss("twitch-stream-key", "live_126031192_" + rand(ALNUM, 20)),
    Miss("adafruit-io-key", "aio_client_session"),
    Miss("http-bearer-token", "Authorization: SSWS ${OKTA_API_TOKEN}"),
])

# Slots that only hold a password, and other credential contexts.
HITS.extend([
    _hit("netrc-password", "machine api.github.com login octo password {v}", rand(ALNUM, 14)),
    _hit("netrc-password", "```\nmachine git.internal.example\n  login deploy\n  password {v}\n```", "pass" + rand(DIGITS, 3)),
    _hit("psexec-password", r"psexec \\10.0.0.5 -u Administrator -p {v} cmd /c whoami", "dev_" + rand(LOWER, 5)),
    _hit("powercli-password", "Connect-VIServer -Server vc01 -User admin@vsphere.local -Password {v}", "VMw4re" + rand(ALNUM, 4) + "!"),
    _hit("dotnet-credential-literal", 'client.Credentials = new NetworkCredential("svc@corp.example", "{v}");', rand(LOWER, 16)),
    _hit("dotnet-credential-literal", 'new DirectoryEntry("LDAP://dc01", "CORP\\\\svc", "{v}")', rand(ALNUM, 12)),
    _hit("jenkins-initial-admin-password",
         "Please use the following password to proceed to installation:\n\n{v}\n\nThis may also be found at: "
         "/var/jenkins_home/secrets/initialAdminPassword", rand(HEX, 32)),
    _hit("vault-unseal-key", "Unseal Key 1: {v}", rand(B64, 44)),
    _hit("vault-unseal-key", "vault operator unseal {v}", rand(B64, 44)),
    _hit("truenas-api-key", '{{"msg": "method", "method": "auth.login_with_api_key", "params": ["{v}"]}}',
         "3-" + rand(ALNUM, 64)),
    _hit("thingsboard-access-token", "curl -X POST https://thingsboard.cloud/api/v1/{v}/telemetry -d '{{}}'",
         rand(LOWER + DIGITS, 20)),
])
MISSES.extend([
    Miss("netrc-password", "machine api.github.com login octo password $GITHUB_TOKEN"),
    Miss("psexec-password", r"psexec \\host -u Administrator -p %ADMIN_PASS% cmd"),
    Miss("psexec-password", r"psexec \\host -u Administrator -p PASSWORD cmd"),
    Miss("powercli-password", 'Connect-VIServer "$endpoint" -User "$username" -Password "$password" | Out-Null'),
    Miss("dotnet-credential-literal", 'new NetworkCredential("user", "password")'),
    Miss("dotnet-credential-literal", "new NetworkCredential(user, password)"),
    Miss("jenkins-initial-admin-password", "Please use the following password to proceed to installation:\n\n(see the log)"),
    Miss("vault-unseal-key", "Unseal Key 1: <unseal key>"),
    Miss("vault-unseal-key", "unseal " + rand(B64, 30)),
    Miss("truenas-api-key", '{"method": "auth.login_with_api_key", "params": ["$TRUENAS_KEY"]}'),
    Miss("thingsboard-access-token", "https://thingsboard.cloud/api/v1/$ACCESS_TOKEN/telemetry"),
])
PROSE.append("On the machine learning login page, password reset is under Settings.")

CRYPT_CHARS = ALNUM + "./"
HITS.extend([
    _hit("password-hash", "root:{v}:19700:0:99999:7:::", "$6$" + rand(CRYPT_CHARS, 16) + "$" + rand(CRYPT_CHARS, 86)),
    _hit("password-hash", "INSERT INTO users VALUES (1, 'ann', '{v}');", "$2b$12$" + rand(CRYPT_CHARS, 53)),
    _hit("password-hash", "admin:{v}", "$1$" + rand(CRYPT_CHARS, 8) + "$" + rand(CRYPT_CHARS, 22)),
    _hit("password-hash", "hash {v}", "$5$rounds=5000$" + rand(CRYPT_CHARS, 16) + "$" + rand(CRYPT_CHARS, 43)),
    _hit("password-hash", "enable secret 8 {v}", "$8$" + rand(CRYPT_CHARS, 14) + "$" + rand(CRYPT_CHARS, 43)),
    _hit("password-hash", "{v}", "$krb5asrep$23$svc@CORP.EXAMPLE:" + rand(HEX, 32) + "$" + rand(HEX, 400)),
])
MISSES.extend([
    Miss("password-hash", 'echo "$1$2 and $6$ are shell arguments"'),
    Miss("password-hash", "$2b$12$" + rand(CRYPT_CHARS, 20)),
    Miss("password-hash", "$6$" + rand(CRYPT_CHARS, 8) + "$" + rand(CRYPT_CHARS, 40)),
])

# Django's startproject key draws from `!@#$%^&*(-_=+)`: a `%(` inside is not a %-format field.
DJANGO_CHARS = LOWER + DIGITS + "!@#$^&*(-_=+)"
HITS.append(_hit("generic-api-key", "SECRET_KEY = '{v}'",
                 "django-insecure-" + rand(DJANGO_CHARS, 20) + "%(" + rand(DJANGO_CHARS, 28)))
MISSES.append(Miss("generic-password", "password = '%(db_password)s'"))
# Letters and digits counted off in turn are a documentation filler, under any rule.
PROSE.append("helm install nr newrelic/nri-bundle --set global.licenseKey=a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8NRAL")
PROSE.append("--set pixie-chart.deployKey=px-dep-d4c3b2a1-f6e5-h8g7-j1i8-p5o0n5m3l2k1")

# Keyword rules for C macros, Terraform variables and sentences that state a password.
HITS.extend([
    _hit("generic-password", '#define SECRET_PASS "{v}"', "Tr0ub4dor&3"),
    _hit("generic-api-key", 'variable "okta_api_token" {{\n  type    = string\n  default = "{v}"\n}}', "00" + rand(URLSAFE, 40)),
    _hit("password-statement", "echo \"The password is '{v}'\"", "Secret123"),
    _hit("password-statement", 'The default password for the user "ops" is "{v}".', "w1nter!" + rand(DIGITS, 2)),
])
MISSES.extend([
    Miss("generic-password", '#define SECRET_PASS ""'),
    Miss("generic-api-key", "#define API_KEY_LENGTH 32"),
    Miss("generic-api-key", 'variable "api_key_name" {\n  default = "' + rand(ALNUM, 24) + '"\n}'),
    Miss("password-statement", "the password is 'incorrect'"),
    Miss("password-statement", 'the password is "${DB_PASSWORD}"'),
])

# In a connection string the password is whatever follows Password=, even `#…` or a word.
HITS.extend([
    _hit("connection-string-password", '<add name="Db" connectionString="Server=sql01,1433;Database=B2B;User ID=b2b;Password={v};" />',
         "#" + rand(ALNUM, 9)),
    _hit("connection-string-password", 'conn.Open("Provider=SQLOLEDB.1;User ID=report_user;Password ={v};Initial Catalog=Sales")',
         "reporting_svc"),
])
MISSES.extend([
    Miss("connection-string-password", "the form posts password=reporting_svc to the server"),
    Miss("connection-string-password", 'string.Format("Server={0};User Id={1};Password={2};", host, user, pw)'),
    Miss("connection-string-password", '"driver={SQL Server};server=#{host};uid=#{user};pwd=#{datastore[\'DBPASSWORD\']}"'),
])
