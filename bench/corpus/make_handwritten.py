"""Build handwritten.jsonl: hand-written texts whose PII is marked inline.

Each text marks a sensitive span as [[TYPE:value]]; this script strips the
markers and records exact character offsets, so the labels cannot drift.
Values are fake but pass format checks (Luhn cards, mod-97 IBANs, SSNs that
follow the SSA rules); the script asserts that.

Run: python bench/corpus/make_handwritten.py  (writes handwritten.jsonl beside it)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.detection.patterns import validators  # noqa: E402

MARKER = re.compile(r"\[\[([A-Z_]+):(.*?)\]\]", re.DOTALL)
TYPES = {
    "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "STREET_ADDRESS", "LOCATION", "ZIP_CODE", "CREDIT_CARD",
    "US_SSN", "IBAN_CODE", "IP_ADDRESS", "DATE_OF_BIRTH", "SECRET", "US_PASSPORT", "US_DRIVER_LICENSE",
}
CHECKS = {
    "CREDIT_CARD": validators.credit_card,
    "IBAN_CODE": validators.iban,
    "US_SSN": validators.ssn,
}

TEXTS = [
    # --- support tickets ---
    """Ticket #48213 - Login loop after password reset
Customer: [[PERSON:Maria Gonzalez]] <[[EMAIL_ADDRESS:maria.gonzalez@brightpath-consulting.com]]>
Phone on file: [[PHONE_NUMBER:(415) 555-0132]]
She says the reset link from yesterday keeps sending her back to the login page. Cleared cookies, tried
Firefox and Chrome. Session logs show requests from [[IP_ADDRESS:73.189.22.104]]. Escalating to tier 2.""",

    """hi, this is [[PERSON:kevin o'brien]]. my card got charged twice for the annual plan?? the card is
[[CREDIT_CARD:4111 1111 1111 1111]] and i only clicked once. pls refund one of them. you can call me back at
[[PHONE_NUMBER:555-201-7788]] after 5pm""",

    """Subject: Re: shipping address change

Hello,
Please update the delivery address on order 1009-22-1187 to:

[[STREET_ADDRESS:Flat 3, 12 Baker Street
London NW1 6XE]]

Thanks,
[[PERSON:Priya Raman]]
[[PHONE_NUMBER:+44 20 7946 0958]]""",

    """Agent note: caller verified with last four of SSN and DOB. Full SSN as read by caller: [[US_SSN:512-44-7781]],
DOB [[DATE_OF_BIRTH:04/17/1986]]. Name on account [[PERSON:Darnell Hughes]]. Updated mailing address to
[[STREET_ADDRESS:2207 Oakridge Dr, Apt 5C, Columbus, OH 43215]].""",

    """[[PERSON:Tomasz Kowalczyk]] wrote via chat: "I moved from [[LOCATION:Kraków]] to [[LOCATION:Dublin]] last month, can you switch my
billing country? My new IBAN is [[IBAN_CODE:DE89 3704 0044 0532 0130 00]] (German account, I kept it)."
Reply sent with the form link.""",

    """Ticket 77120 | priority: high
Reporter: [[EMAIL_ADDRESS:j.whitfield@northwind-ops.io]]
Our webhook endpoint at [[IP_ADDRESS:198.51.100.23]] stopped receiving events around 02:10 UTC. Signing secret we
configured is [[SECRET:whsec_9fJ2kLqP0vXb7RtY3mNs8dHc]] - please confirm it matches on your side.""",

    """Customer [[PERSON:Lucía Fernández]] asked to pay by bank transfer instead of card. Provided IBAN
[[IBAN_CODE:ES91 2100 0418 4502 0005 1332]]. She lives in [[LOCATION:Valencia]], reachable on [[PHONE_NUMBER:+34 612 345 678]].""",

    """Chat transcript 2024-03-02
[10:02] visitor: hey my name's [[PERSON:sam patel]]
[10:02] visitor: email is [[EMAIL_ADDRESS:sampatel1990@gmail.com]]
[10:03] agent: Thanks Sam, how can I help?
[10:04] visitor: i need to update my phone, new one is [[PHONE_NUMBER:646.555.0199]]
[10:05] agent: Done!""",

    """Refund request. Cardholder [[PERSON:Emily Zhang]], Amex ending 0005, full number given by customer:
[[CREDIT_CARD:3782 822463 10005]]. Invoice INV-2024-00981 was billed twice. Approved by [[PERSON:Marcus Bell]].""",

    """The user [[PERSON:Olga Petrova]] could not verify her identity. Uploaded passport number [[US_PASSPORT:561289034]] was
rejected by the vendor because the photo was blurry. Asked her to retry from [[LOCATION:Seattle]] office wifi.""",

    # --- CRM notes ---
    """CRM note - call with [[PERSON:Jonathan Reyes]] (VP Eng). Budget approved for Q3. Send contract to
[[EMAIL_ADDRESS:jreyes@meridianhealth.org]]. Follow up next Tuesday; his cell is [[PHONE_NUMBER:+1 312 555 0147]].
HQ: [[STREET_ADDRESS:455 N Cityfront Plaza Dr, Chicago, IL 60611]].""",

    """Lead: [[PERSON:Hannah Schmidt]], procurement lead. Met at the [[LOCATION:Berlin]] expo. Office line [[PHONE_NUMBER:+49 30 901820]].
Interested in the enterprise tier; wants SSO and an EU data region. Next step: demo with [[PERSON:Raj Malhotra]].""",

    """Account review: Harbor Logistics. Main contact [[PERSON:Denise Carter]] ([[EMAIL_ADDRESS:dcarter@harborlogistics.com]]) left the
company; replacement is [[PERSON:Luis Ortega]], [[PHONE_NUMBER:713-555-0164]]. Billing address unchanged:
[[STREET_ADDRESS:8800 Westpark Drive, Suite 200
Houston, TX 77063]]""",

    """met [[PERSON:aisha bello]] for coffee, she runs data at a fintech in [[LOCATION:Lagos]]. might intro us to their CTO.
her whatsapp: [[PHONE_NUMBER:+234 803 555 0123]]""",

    """Renewal risk flagged by [[PERSON:Greg Novak]]. Customer says price is too high. Decision maker [[PERSON:Sophie Laurent]]
([[EMAIL_ADDRESS:sophie.laurent@atelier-lumiere.fr]], [[PHONE_NUMBER:+33 1 42 68 53 00]]) is based in [[LOCATION:Paris]].""",

    """Contact card
Name: [[PERSON:Robert "Bob" Mitchell]]
Email: [[EMAIL_ADDRESS:bob.mitchell@pinecrest-realty.com]]
Mobile: [[PHONE_NUMBER:(206) 555-0178]]
Address: [[STREET_ADDRESS:1420 5th Ave, Seattle, WA 98101]]""",

    """Note from [[PERSON:Keiko Tanaka]]: customer wants invoices sent to accounts payable, [[EMAIL_ADDRESS:ap@sunrise-foods.jp]], and the
remittance IBAN on their side is [[IBAN_CODE:GB82 WEST 1234 5698 7654 32]]. Their UK entity is in [[LOCATION:Manchester]].""",

    # --- HR notes ---
    """New hire paperwork - [[PERSON:Daniel Kim]]
SSN: [[US_SSN:219-09-9999]]
Date of birth: [[DATE_OF_BIRTH:March 3, 1991]]
Home address: [[STREET_ADDRESS:77 Maple Lane, Springfield, IL 62704]]
Direct deposit: routing 021000021, checking account ending 4421.
Emergency contact: [[PERSON:Grace Kim]], [[PHONE_NUMBER:217-555-0110]]""",

    """HR case 2291: [[PERSON:Angela Brooks]] reported that her manager [[PERSON:Tom Harlow]] shared her home address
([[STREET_ADDRESS:19 Willow Court, Naperville, IL 60540]]) in a team channel. Investigating; do not forward this note.""",

    """Onboarding checklist for [[PERSON:Mohammed Al-Farsi]]: I-9 verified with US passport [[US_PASSPORT:A12345678]], laptop shipped
to [[STREET_ADDRESS:3100 Lakeshore Blvd W, Apt 1207, Toronto]], badge photo pending. Start date Monday.""",

    """Background check consent received from [[PERSON:Rebecca Stone]], born [[DATE_OF_BIRTH:12/22/1978]], SSN [[US_SSN:401-22-3344]],
driver's license [[US_DRIVER_LICENSE:D4482913]] (CA). Previous address: [[STREET_ADDRESS:615 Sunset Blvd
Los Angeles, CA 90028]].""",

    """performance review draft - [[PERSON:jake miller]] hit 3 of 4 goals. moved to the [[LOCATION:Austin]] team in march.
personal email for the offer letter: [[EMAIL_ADDRESS:jake.miller.tx@outlook.com]]""",

    """Payroll correction: [[PERSON:Nadia Hassan]]'s SSN was keyed as 078-05-1121, correct value is [[US_SSN:078-05-1120]].
Please reissue her W-2 to [[STREET_ADDRESS:PO Box 4471, Tucson, AZ 85717]].""",

    """Leave request from [[PERSON:Chris Doyle]] (employee 48812). Doctor's note attached. Contact while on leave:
[[PHONE_NUMBER:+1 (617) 555-0191]] or [[EMAIL_ADDRESS:cdoyle.personal@protonmail.com]].""",

    # --- clinical-style notes ---
    """Pt: [[PERSON:Eleanor Whitaker]], DOB [[DATE_OF_BIRTH:1948-09-14]]. MRN 00872341. Seen for follow-up of type 2 diabetes.
A1c improved to 7.1. Lives alone at [[STREET_ADDRESS:42 Elm Street, Burlington, VT 05401]]; daughter [[PERSON:Susan Whitaker]]
([[PHONE_NUMBER:802-555-0133]]) helps with meds.""",

    """Discharge summary. Patient [[PERSON:Raymond Ortiz]] (d.o.b. [[DATE_OF_BIRTH:07/02/1963]]) admitted with chest pain, troponin
negative x2. Discharged home to [[LOCATION:El Paso]]. PCP: [[PERSON:Dr. Anita Shah]], fax [[PHONE_NUMBER:915-555-0172]].""",

    """Referral: please see [[PERSON:Mrs. Joan Pierce]], born [[DATE_OF_BIRTH:2 February 1955]], for cataract evaluation. Insurance
member ID WX4471920. Home phone [[PHONE_NUMBER:(503) 555-0114]], address [[STREET_ADDRESS:900 SW Jefferson St, Portland, OR 97201]].""",

    """Telehealth visit with [[PERSON:Liam Byrne]], 34M, calling from [[LOCATION:Cork]], [[LOCATION:Ireland]]. Reports migraines 3x/week.
Started sumatriptan. Callback [[PHONE_NUMBER:+353 21 455 0199]].""",

    """Lab requisition - [[PERSON:Fatima Noor]], DOB: [[DATE_OF_BIRTH:11-30-1990]], SSN on intake form [[US_SSN:231-87-5512]].
Tests: CBC, CMP, TSH. Send results to [[EMAIL_ADDRESS:fatima.noor@mailbox.org]].""",

    # --- deploy / CI logs ---
    """2024-05-14T09:12:44Z INFO  deploy: starting rollout of api-gateway v2.14.3 to prod-eu
2024-05-14T09:12:45Z INFO  deploy: target hosts [[IP_ADDRESS:10.20.4.17]], [[IP_ADDRESS:10.20.4.18]], [[IP_ADDRESS:10.20.4.19]]
2024-05-14T09:12:47Z DEBUG env: DATABASE_URL=[[SECRET:postgres://app_user:Tr0ub4dor&3@db-prod.internal:5432/orders]]
2024-05-14T09:13:02Z INFO  deploy: health checks passed (3/3)""",

    """Step 4/9 : RUN pip install -r requirements.txt
 ---> Running in 7c1d2e9a
Step 5/9 : ENV AWS_ACCESS_KEY_ID=[[SECRET:AKIAIOSFODNN7EXAMPLE]]
Step 6/9 : ENV AWS_SECRET_ACCESS_KEY=[[SECRET:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY]]
Step 7/9 : COPY . /app
Successfully built 3f9a1c2b""",

    """[ci] job 88124 failed: integration tests could not reach redis at [[IP_ADDRESS:172.31.9.44]]:6379
[ci] triggered by [[EMAIL_ADDRESS:devon.price@company-internal.dev]]
[ci] retrying with REDIS_PASSWORD=[[SECRET:r3d1s-S3cr3t-9921]]""",

    """Jun 03 14:22:10 web-03 sshd[2231]: Failed password for invalid user admin from [[IP_ADDRESS:203.0.113.77]] port 51122 ssh2
Jun 03 14:22:14 web-03 sshd[2231]: Accepted publickey for [[PERSON:mlopez]] from [[IP_ADDRESS:192.0.2.45]] port 51130 ssh2
Jun 03 14:25:01 web-03 CRON[2290]: (root) CMD (/usr/local/bin/backup.sh)""",

    """deploy-bot: rollback of billing-svc requested by [[PERSON:Ines Duarte]] after error rate hit 4.2%.
deploy-bot: notifying on-call [[PHONE_NUMBER:+351 912 345 678]] via pager
deploy-bot: upstream [[IP_ADDRESS:2001:db8:85a3::8a2e:370:7334]] marked unhealthy""",

    """GitHub Actions run #512
Run ./scripts/publish.sh
  NPM_TOKEN: ***
  echo "//registry.npmjs.org/:_authToken=[[SECRET:npm_4f8Kq2ZxLmN7pR0tVb3YwC9dHs6JeA1uGi5o]]" > .npmrc
Published @acme/ui-kit@3.2.0""",

    """kubectl logs payments-7d9f -n prod | tail
WARN  stripe client initialised with key [[SECRET:sk_live_51Hx9Qz2eZvKYlo2CjT8sPq4mW]]
INFO  processed charge ch_3Nz for customer [[EMAIL_ADDRESS:orders@greenleaf-market.com]]
ERROR card declined: [[CREDIT_CARD:4000 0566 5566 5556]] (insufficient funds)""",

    # --- emails ---
    """From: [[PERSON:Laura Chen]] <[[EMAIL_ADDRESS:laura.chen@oakwoodpartners.com]]>
To: legal@vendor.example
Subject: NDA redlines

Hi team, attached are our comments. I'm out of the office until Monday; for anything urgent call my assistant
[[PERSON:Ben Foster]] at [[PHONE_NUMBER:212-555-0187]]. Our mailing address for the signed copy is
[[STREET_ADDRESS:350 Fifth Avenue, Suite 4100, New York, NY 10118]].

Best, Laura""",

    """hey [[PERSON:marco]],
can you wire the deposit for the [[LOCATION:Lisbon]] offsite? venue's IBAN is [[IBAN_CODE:FR14 2004 1010 0505 0001 3M02 606]], ref OFFSITE-24.
thx
[[PERSON:jen]]""",

    """Dear [[PERSON:Mr. Okafor]],
Your new corporate card ending in 4444 has been mailed to [[STREET_ADDRESS:1600 Amphitheatre Pkwy, Mountain View, CA 94043]].
For reference the full number is [[CREDIT_CARD:5555-5555-5555-4444]]; please do not share it. Activate by calling
[[PHONE_NUMBER:1-800-555-0102]].""",

    """Forwarding for visibility. [[PERSON:Yusuf Demir]] ([[EMAIL_ADDRESS:yusuf.demir@istanbul-textiles.com.tr]]) says the shipment to
[[LOCATION:Izmir]] is stuck in customs and asks that we call [[PHONE_NUMBER:+90 212 555 01 23]].""",

    """Hi [[PERSON:Anna]], quick one: the contractor's SSN for the 1099 is [[US_SSN:623-18-4402]] and her address is
[[STREET_ADDRESS:48 Pine Ridge Road, Asheville, NC 28803]]. Zip on the W-9 says [[ZIP_CODE:28804]] though, can you check?""",

    """Reminder: [[PERSON:Victor Hale]]'s farewell lunch is Friday at noon. RSVP to [[EMAIL_ADDRESS:victor.farewell@gmail.com]] by Wed.""",

    # --- code snippets / config ---
    """# config/production.yaml
database:
  host: [[IP_ADDRESS:10.0.12.5]]
  user: svc_orders
  password: "[[SECRET:p@ssw0rd-Qx7!mZ2]]"
smtp:
  username: [[EMAIL_ADDRESS:notifications@shopfront.io]]
  api_key: [[SECRET:SG.x7Kp2mQ9TzLw4RvN1bYc.8HjE3uFa6DsG0kPqWnZtVxCyMb5LoIe2Ra9Ug7Td4]]""",

    """.env
SLACK_BOT_TOKEN=[[SECRET:xoxb-2946017734-5562819937-Zk8Qp3Lm2NvX9wRt7YbC4dHs]]
GITHUB_TOKEN=[[SECRET:ghp_R8kZ2qLm9XwP4vN7tB3yC6dHs1JeA0uGi5oF]]
ADMIN_EMAIL=[[EMAIL_ADDRESS:it-admin@lumencare.org]]
SENTRY_DSN=https://public@o1234.ingest.sentry.io/567""",

    """{
  "customer": {
    "name": "[[PERSON:Isabella Rossi]]",
    "email": "[[EMAIL_ADDRESS:isabella.rossi@libero.it]]",
    "phone": "[[PHONE_NUMBER:+39 06 6982 1234]]",
    "iban": "[[IBAN_CODE:IT60X0542811101000000123456]]",
    "city": "[[LOCATION:Rome]]"
  },
  "card": {"number": "[[CREDIT_CARD:4242424242424242]]", "exp": "09/27"}
}""",

    """def test_checkout():
    client.post("/pay", json={
        "card": "[[CREDIT_CARD:6011 1111 1111 1117]]",
        "zip": "[[ZIP_CODE:94107]]",
        "email": "[[EMAIL_ADDRESS:qa.bot+checkout@testmail.dev]]",
    })
    # TODO remove: prod key [[SECRET:rk_live_7Hq2Lp9ZxKv3Nm8TbW4cYd1S]]""",

    """-----BEGIN RSA PRIVATE KEY-----
[[SECRET:MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi8A0bvXg3t6pYz8E7sKq0wL5nR
Hc4vF9uJ2bXkWq3TzLp7YmN8sDf6GhJ1aQ2wErTy5UiOp4AsDf3GhJkL9zXcV8bN]]
-----END RSA PRIVATE KEY-----
saved to ~/.ssh/id_rsa on [[PERSON:priya]]'s laptop, please rotate""",

    """terraform.tfvars
region        = "us-east-1"
db_password   = "[[SECRET:Winter2024!Rotate]]"
admin_cidr    = "[[IP_ADDRESS:198.51.100.0]]/24"
owner_email   = "[[EMAIL_ADDRESS:platform-team@veridian.cloud]]\"""",

    """mysql -h [[IP_ADDRESS:192.168.10.20]] -u root -p'[[SECRET:Sup3rS3cret#DB]]' customers -e "SELECT * FROM users WHERE email='[[EMAIL_ADDRESS:h.nguyen@pacificrim.co]]'"
""",

    """curl -X POST https://api.vendor.example/v1/messages \\
  -H "Authorization: Bearer [[SECRET:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQ0MjEifQ.Xk9pQ2Lm7ZvB3nR8tW1yC4dHs6JeA0uG]]" \\
  -d '{"to": "[[PHONE_NUMBER:+1 555 123 4567]]", "body": "Your code is 449812"}'""",

    # --- misc ---
    """Incident postmortem draft: at 03:14 the on-call ([[PERSON:Sarah Lindqvist]]) saw a spike of 5xx from [[IP_ADDRESS:100.64.3.21]].
Root cause was an expired TLS cert on the [[LOCATION:Frankfurt]] edge. Customer impact: ~2% of EU traffic for 40 minutes.""",

    """Wire instructions (do not email!): beneficiary [[PERSON:Pieter de Vries]], IBAN [[IBAN_CODE:NL91 ABNA 0417 1643 00]], bank in
[[LOCATION:Amsterdam]]. Second beneficiary: [[PERSON:Lena Müller]], [[IBAN_CODE:CH93 0076 2011 6238 5295 7]].""",

    """Tenant application - applicant [[PERSON:Carlos Mendoza]], SSN [[US_SSN:455 62 1198]], current address [[STREET_ADDRESS:2419 Mission St
San Francisco, CA 94110]], DOB [[DATE_OF_BIRTH:Aug 19, 1988]], driver license # [[US_DRIVER_LICENSE:F2239981]].""",

    """Shipping label: [[PERSON:Olivia Brown]], [[STREET_ADDRESS:742 Evergreen Terrace, Springfield, OR 97477]], tel. [[PHONE_NUMBER:541-555-0166]].
Package 1Z999AA10123456784, 2.4 kg.""",

    """Survey free-text answer: "I'm [[PERSON:noah]] and I work from home in [[LOCATION:Denver]]. Honestly the app is great but
please stop calling me at [[PHONE_NUMBER:720 555 0143]] about upgrades." """,

    """Fraud review: order 55120 placed with card [[CREDIT_CARD:5105 1051 0510 5100]] by [[EMAIL_ADDRESS:fastbuyer_88@yahoo.com]] from
IP [[IP_ADDRESS:45.33.32.156]] ([[LOCATION:Fremont]], [[LOCATION:California]]); billing zip [[ZIP_CODE:10001]] does not match the IP location.""",

    """Visitor log 14 May: [[PERSON:Dr. Helen Park]] signed in 09:40, escorted by [[PERSON:Omar Haddad]]. Visitor badge 2231.
Passport shown: [[US_PASSPORT:488210677]].""",

    """Volunteer roster update: [[PERSON:Grace O'Neill]] ([[PHONE_NUMBER:07700 900123]]) is covering Saturday in [[LOCATION:Leeds]];
her address for the thank-you card is [[STREET_ADDRESS:27 Hyde Park Road, Leeds LS6 1AE]].""",

    """Account takeover suspected. Attacker changed recovery email to [[EMAIL_ADDRESS:recover.acct.9921@tutanota.com]] and phone to
[[PHONE_NUMBER:+7 495 555-01-44]]. Original owner [[PERSON:Bianca Ferreira]] confirmed via [[PHONE_NUMBER:+55 11 95555-0123]].""",
]


def parse(marked: str) -> dict:
    text_parts: list[str] = []
    spans = []
    pos = 0
    length = 0
    for m in MARKER.finditer(marked):
        before = marked[pos:m.start()]
        text_parts.append(before)
        length += len(before)
        entity, value = m.group(1), m.group(2)
        if entity not in TYPES:
            raise ValueError(f"unknown entity type {entity}")
        check = CHECKS.get(entity)
        if check is not None and not check(value):
            raise ValueError(f"{entity} value fails its format check")
        spans.append({"entity_type": entity, "start": length, "end": length + len(value)})
        text_parts.append(value)
        length += len(value)
        pos = m.end()
    text_parts.append(marked[pos:])
    text = "".join(text_parts)
    if "[[" in text or "]]" in text:
        raise ValueError("unbalanced marker")
    return {"text": text, "spans": spans}


def main() -> None:
    out = Path(__file__).with_name("handwritten.jsonl")
    records = [parse(t) for t in TEXTS]
    with out.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    total = sum(len(r["spans"]) for r in records)
    print(f"wrote {len(records)} texts, {total} spans to {out}")


if __name__ == "__main__":
    main()
