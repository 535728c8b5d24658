"""Policy files: what to detect for a vendor and what to do with each finding.

`model.py` is the policy itself; `detection.py` its custom recognizers and
allow-lists; `fields.py` its per-field rules; `company.py` its company-IP keys.
"""

from gateway.policy.model import ActionSpec, Policy, PolicyError, default_policy, load_policy

__all__ = ["ActionSpec", "Policy", "PolicyError", "default_policy", "load_policy"]
