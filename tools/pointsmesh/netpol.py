"""NetworkPolicy semantics, for checking policies without a cluster that enforces them.

Used by tests/chart (on `helm template` output) and tests/e2e (on the live objects and pods):
which connections a set of NetworkPolicies allows between pods (pod and namespace selectors,
ports by number or by name), as the Kubernetes API defines it: a pod that no policy of a
direction selects is not isolated in that direction; otherwise a rule of a selecting policy
must match both the peer and the port, on both the source's egress and the destination's
ingress. ipBlock peers are matched only against addresses outside the pod network (pod IPs
are not modelled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Policy = Mapping[str, Any]
DEFAULT_NAMESPACE = "default"


# ---------------------------------------------------------------- label selectors

def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics: matchLabels and matchExpressions (In, NotIn, Exists,
    DoesNotExist), all ANDed; an empty selector matches everything. (A null selector in a
    NetworkPolicy peer means "not given", which callers handle before calling this.)"""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            raise ValueError(f"unknown selector operator {op!r}")
        if not ok:
            return False
    return True


# ---------------------------------------------------------------- NetworkPolicies

@dataclass(frozen=True)
class Endpoint:
    """A pod (its labels, namespace and named ports) or, with pod=False, an address outside
    the cluster's pods."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace: str = DEFAULT_NAMESPACE
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    named_ports: Mapping[str, int] = field(default_factory=dict)
    pod: bool = True


def peer_matches(peer: Mapping[str, Any], policy_ns: str, other: Endpoint) -> bool:
    """Does a NetworkPolicyPeer (from/to entry) match the endpoint? ipBlock peers match only
    addresses outside the pod network here (pod IPs are not modelled)."""
    if "ipBlock" in peer:
        return not other.pod
    if not other.pod:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    return "podSelector" not in peer or selector_matches(peer["podSelector"], other.labels)


def ports_match(ports: Sequence[Mapping[str, Any]] | None, port: int, protocol: str,
                dest: Endpoint) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        if "port" not in p:
            return True
        want = p["port"]
        if isinstance(want, str):
            want = dest.named_ports.get(want)
        if want is None:
            continue
        if want == port or (p.get("endPort") is not None and want <= port <= p["endPort"]):
            return True
    return False


def policy_types(policy: Policy) -> list[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]


def selects(policy: Policy, ep: Endpoint) -> bool:
    ns = policy["metadata"].get("namespace", DEFAULT_NAMESPACE)
    return ep.pod and ep.namespace == ns and selector_matches(policy["spec"]["podSelector"],
                                                               ep.labels)


def _direction_allows(policies: Sequence[Policy], direction: str, subject: Endpoint,
                      other: Endpoint, port: int, protocol: str, dest: Endpoint) -> bool:
    """Ingress (subject = destination, other = source) or Egress (subject = source)."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    isolating = [p for p in policies if selects(p, subject) and direction in policy_types(p)]
    if not isolating:
        return True
    for policy in isolating:
        ns = policy["metadata"].get("namespace", DEFAULT_NAMESPACE)
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if peers and not any(peer_matches(peer, ns, other) for peer in peers):
                continue
            if ports_match(rule.get("ports"), port, protocol, dest):
                return True
    return False


def allowed(policies: Sequence[Policy], src: Endpoint, dst: Endpoint, port: int,
            protocol: str = "TCP") -> bool:
    """Would a connection src -> dst:port be allowed? Both the source's egress and the
    destination's ingress must allow it (an unselected side is not isolated)."""
    egress_ok = not src.pod or _direction_allows(policies, "Egress", src, dst, port, protocol,
                                                  dst)
    ingress_ok = not dst.pod or _direction_allows(policies, "Ingress", dst, src, port, protocol,
                                                   dst)
    return egress_ok and ingress_ok
