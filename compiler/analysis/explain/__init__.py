"""Why one connection is allowed or denied: the analysis behind `netpolc explain`.

A question is (source, destination, protocol and port). Each end is resolved from the model into
*parties*: an app in one cluster (its pods, addressed from the cluster's pod ranges), a host (its
addresses), or a set of addresses (a network, a cluster's pods, a router, a CIDR, an address
outside the estate, `internet`, `any`). A role stands for each of its hosts; an app for each of
its clusters.

For each pair of parties and each address family, both policed ends must allow the connection:
- the source, when it is an app: the Calico egress of its pods in its cluster (the flows whose
  source is the app or every app, in that cluster, and the built-in ICMP of the default deny);
- the destination, when it is an app: the Calico ingress of its pods likewise; when it is a host
  with a firewall: what `analysis.host_firewalls()` says the host admits, and the ICMP lines every
  ferm file starts with. Hosts send unfiltered (ferm owns INPUT only), addresses are not policed.
Calico matches a peer by label only for an app of the local cluster; everything else, an app of
another cluster included, by address. So a far end is matched by a rule when its addresses of the
family all lie in the rule's peer (a `network kubepods` rule matches every pod), or by label.

The decision is made on the model. The compiled files (`{path: bytes}`, as the backends render
them) are then read to find the lines that implement it: the Calico rule of the policy that holds
the statement (by its `netpolc.io/source` annotation and its place in the YAML text) and the ferm
line after the statement's `# file:line` comment. The files are also judged on their own, and a
disagreement with the model is reported as a problem (it would be a bug in a backend).

When an end denies, the statements that come nearest are given: the same peer on other ports, the
same port from or to a peer that does not hold the far end (or holds only part of it), a statement
that holds only in another cluster, or another owner that is allowed it; and a hint of what to
write.

The modules, in the order a question goes through them: `question.py` (the words parsed),
`ends.py` (the parties), `grants.py` (what each policed end lets through, on the model), `cover.py`
(how much of a far end a peer holds), `decide.py` (the decision of one end), `calico_files.py`,
`ferm_file.py` and `compiled.py` (the compiled files read back), `nearest.py` and `hints.py` (when
an end denies), `report.py` (the answer), `explainer.py` (the ends of each pair, per family),
`source_text.py` (a statement as written).
"""

from __future__ import annotations

from ...diagnostics import Span
from .compiled import Emitted
from .ends import Party, estate_addresses, resolve
from .explainer import Explainer, explain
from .grants import Grant, Statement, calico_grants, ferm_grants, rule_statement
from .question import ExplainError, Query, Spec, parse_query, parse_words
from .report import ALLOWED, DENIED, NA, NOT_POLICED, UNKNOWN, EndResult, FamilyResult, Nearest, PairResult, Report
from .source_text import statement_text

__all__ = ["ALLOWED", "DENIED", "NA", "NOT_POLICED", "UNKNOWN", "Emitted", "EndResult", "ExplainError", "Explainer",
           "FamilyResult", "Grant", "Nearest", "PairResult", "Party", "Query", "Report", "Span", "Spec", "Statement",
           "calico_grants", "estate_addresses", "explain", "ferm_grants", "parse_query", "parse_words", "resolve",
           "rule_statement", "statement_text"]
