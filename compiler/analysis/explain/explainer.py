"""Answers one question for one model and its compiled files: per pair of parties and per family,
the source end (the Calico egress of an app's pods; hosts send unfiltered, addresses are not
policed) and the destination end (the Calico ingress of an app's pods, or a host's firewall), each
decided on the model, then found in and judged on the compiled files."""

from __future__ import annotations

from collections.abc import Mapping

from netaddr import IPNetwork, IPSet

from ... import model as m
from .calico_files import calico_port_ok
from .compiled import Compiled, Emitted
from .cover import FULL, NONE, PARTIAL, held_by_union, of_family
from .decide import decide, denied_reason
from .ends import Party, pairs, resolve
from .grants import Grant, calico_grants, ferm_grants
from .hints import calico_hint, ferm_hint
from .nearest import elsewhere, nearest
from .question import FAMILIES, Query, Spec
from .report import ALLOWED, DENIED, NA, NOT_POLICED, UNKNOWN, EndResult, FamilyResult, PairResult, Report


class Explainer:
    """Answers for one model and its compiled files; the grants of each end and the parsed files are kept."""

    def __init__(self, model: m.Model, files: Mapping[str, bytes]):
        self.model = model
        self.compiled = Compiled(files)
        self._grants: dict[tuple, list[Grant]] = {}

    def grants(self, kind: str, *key: str) -> list[Grant]:
        if (kind, *key) not in self._grants:
            if kind == "calico":
                self._grants[(kind, *key)] = calico_grants(self.model, *key)
            else:
                self._grants[(kind, *key)] = ferm_grants(self.model, *key)
        return self._grants[(kind, *key)]

    def source_end(self, src: Party, dst: Party, family: int, query: Query) -> EndResult:
        if src.kind == "app":
            return self._calico_end("source", src, dst, family, query)
        if src.kind == "pods":
            return _unknown_pod("source", src)
        if src.kind == "host":
            return EndResult("source", "none", src.label, NOT_POLICED,
                             "a host's outgoing traffic is not filtered (its ferm file polices INPUT only)")
        if src.kind in ("outside", "internet", "any"):
            return EndResult("source", "none", src.label, NOT_POLICED, "netpolc polices no sender outside the estate")
        return EndResult("source", "none", src.label, NOT_POLICED,
                         "an address set: netpolc polices only the pods of apps and the INPUT of hosts")

    def destination_end(self, src: Party, dst: Party, family: int, query: Query) -> EndResult:
        if dst.kind == "app":
            return self._calico_end("destination", dst, src, family, query)
        if dst.kind == "pods":
            return _unknown_pod("destination", dst)
        if dst.kind == "host":
            host = self.model.hosts[dst.name]
            if not host.firewall:
                off = [r for r in host.roles if not self.model.roles[r].firewall]
                return EndResult("destination", "none", f"host {dst.name}", NOT_POLICED,
                                 f"host {dst.name} has no host firewall (role {', '.join(off)}: `firewall none`)")
            return self._ferm_end(src, dst, family, query)
        inside = [h.name for h in self.model.hosts.values() if h.firewall
                  and any(IPNetwork(a) in c for a in h.addresses for c in dst.cidrs)][:5] \
            if dst.kind in ("network", "cidr") else []
        reason = "an address set is not policed by netpolc"
        if inside:
            reason += f"; it holds hosts with a firewall, name one to see it ({', '.join(inside)})"
        return EndResult("destination", "none", dst.label, NOT_POLICED, reason)

    def _calico_end(self, end: str, local: Party, far: Party, family: int, query: Query) -> EndResult:
        assert local.cluster is not None
        direction = "egress" if end == "source" else "ingress"
        subject = f"Calico {direction} of app {local.name} in cluster {local.cluster}"
        grants = self.grants("calico", local.name, local.cluster, direction)
        allowed, statements, partial = decide(grants, far, family, query)
        result = EndResult(end, "calico", subject, ALLOWED if allowed else DENIED, "", statements)
        files = self.compiled.calico(local.cluster)
        app = self.model.apps[local.name]
        rules = files.rules_for(app.name, app.namespace or app.name, direction)
        matching = [(r, files.cover(r, far, family)) for r in rules if calico_port_ok(r.rule, query, family)]
        file_allowed = any(c == FULL for _, c in matching) or held_by_union(
            far.of(family), IPSet(n for r, c in matching if c == PARTIAL for n in files.rule_nets(r, family)))
        if allowed:
            where = {s.location for s in statements}
            result.emitted = [Emitted(r.file, r.line, files.describe(r), r.location)
                              for r, c in matching if c != NONE and r.location in where]
            result.reason = f"{'egress to' if end == 'source' else 'ingress from'} {far.label} on {query} is allowed"
            if not result.emitted:
                result.problems.append(f"{subject}: the model allows {query.dsl} but no rule in calico/"
                                       f"{local.cluster}/ implements it (a bug in netpolc?)")
        else:
            result.reason = denied_reason(direction, far, query, partial)
            result.nearest = nearest(grants, far, family, query, partial, "to" if end == "source" else "from",
                                      elsewhere(self.model, end, local, far, family, query))
            result.hint = calico_hint(self.model, end, local, far, query)
        if file_allowed != allowed:
            result.problems.append(f"{subject}: the model says {result.verdict} for {far.label} on {query.dsl} "
                                   f"over IPv{family}, the compiled calico/{local.cluster}/ files say "
                                   f"{ALLOWED if file_allowed else DENIED}")
        return result

    def _ferm_end(self, src: Party, dst: Party, family: int, query: Query) -> EndResult:
        subject = f"host firewall (ferm) of host {dst.name}"
        grants = self.grants("ferm", dst.name)
        allowed, statements, partial = decide(grants, src, family, query)
        result = EndResult("destination", "ferm", subject, ALLOWED if allowed else DENIED, "", statements)
        ferm = self.compiled.ferm(dst.name)
        if ferm is None:
            result.problems.append(f"{subject}: no ferm/{dst.name}.conf among the compiled files")
            return result
        lines = [(f, ferm.cover(f, src, family)) for f in ferm.chains[family] if ferm.port_ok(f, query, family)]
        file_allowed = any(c == FULL for _, c in lines) or held_by_union(
            src.of(family), of_family((n for f, c in lines if c == PARTIAL for n in ferm.saddr_nets(f)), family))
        if allowed:
            for s in statements:
                for f, c in lines:
                    if c == NONE:
                        continue
                    if s.location is None and not f.comments or \
                            s.location is not None and any(x.startswith(f"# {s.location} ") for x in f.comments):
                        result.emitted.append(Emitted(ferm.path, f.line, f.text, s.location))
            result.emitted = sorted(set(result.emitted), key=lambda e: e.line)
            result.reason = f"{dst.name} admits {query} from {src.label}"
            if not result.emitted:
                result.problems.append(f"{subject}: the model allows {query.dsl} but no line of {ferm.path} "
                                       "implements it (a bug in netpolc?)")
        else:
            result.reason = denied_reason("ingress", src, query, partial)
            result.nearest = nearest(grants, src, family, query, partial, "from",
                                      elsewhere(self.model, "destination", dst, src, family, query))
            result.hint = ferm_hint(self.model, src, dst, query)
        if file_allowed != allowed:
            result.problems.append(f"{subject}: the model says {result.verdict} for {src.label} on {query.dsl} over "
                                   f"IPv{family}, {ferm.path} says {ALLOWED if file_allowed else DENIED}")
        return result

    def pair(self, src: Party, dst: Party, query: Query) -> PairResult:
        families = []
        for family in FAMILIES:
            reason = None
            if family not in query.families:
                reason = f"{query.protocol} is IPv{query.families[0]} only"
            elif not src.of(family):
                reason = f"{src.label} has no IPv{family} address"
            elif not dst.of(family):
                reason = f"{dst.label} has no IPv{family} address"
            if reason:
                families.append(FamilyResult(family, NA, reason, []))
                continue
            ends = [self.source_end(src, dst, family, query), self.destination_end(src, dst, family, query)]
            verdicts = [e.verdict for e in ends]
            verdict = DENIED if DENIED in verdicts else UNKNOWN if UNKNOWN in verdicts else ALLOWED
            families.append(FamilyResult(family, verdict, None, ends))
        return PairResult(src, dst, families)


def explain(model: m.Model, files: Mapping[str, bytes], source: Spec, destination: Spec, query: Query) -> Report:
    """Answer one question; ExplainError(1) when an end names nothing in the policy."""
    sources = resolve(model, source)
    destinations = resolve(model, destination)
    ex = Explainer(model, files)
    return Report(source, destination, query,
                  [ex.pair(s, d, query) for s, d in pairs(sources, destinations, source, destination)])


def _unknown_pod(end: str, pod: Party) -> EndResult:
    """An end that is a pod address of no known app: its policy cannot be judged."""
    direction = "egress" if end == "source" else "ingress"
    return EndResult(end, "calico", f"Calico {direction} of the pod at {pod.name}", UNKNOWN,
                     f"which app's pod has {pod.name} is not known, so its {direction} is not judged; "
                     f"name the app (`app NAME@{pod.cluster}`)")
