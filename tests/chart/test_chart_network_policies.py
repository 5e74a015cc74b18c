"""The NetworkPolicies allow exactly the flows the chart claims, evaluated on the rendered
objects: each policy's podSelector and peers are matched against the labels of the rendered pod
templates (chartlib.allowed implements the NetworkPolicy semantics: a pod selected by a policy
of a direction is isolated in that direction, and a connection needs both the source's egress
and the destination's ingress).

  - default deny: every pod of the release is isolated for Ingress and Egress;
  - a server's protocol port: only its own member's client pods and the test pod;
  - the database port: only the server pods;
  - DNS (UDP and TCP 53) to CoreDNS in kube-system: every pod;
  - nothing else between the release's pods, and (own database) nothing out of the cluster.
"""

from __future__ import annotations

from typing import Any

import pytest
from chartlib import (
    NAMESPACE,
    VALUE_SETS,
    Endpoint,
    Obj,
    PodTemplate,
    ValueSet,
    allowed,
    find,
    pod_endpoint,
    pod_templates,
    policy_types,
    render,
    rendered,
    selector_matches,
    selects,
)

COREDNS = Endpoint("kube-system/coredns", {"k8s-app": "kube-dns"}, "kube-system",
                   {"kubernetes.io/metadata.name": "kube-system"}, {"dns": 53, "dns-tcp": 53})
OUTSIDE = Endpoint("an address outside the cluster", pod=False)
OTHER_APP = Endpoint("another app's pod in the namespace", {"app": "other"}, NAMESPACE,
                     {"kubernetes.io/metadata.name": NAMESPACE})


def component(t: PodTemplate) -> str:
    return t.labels.get("app.kubernetes.io/component", "")


def server_port(t: PodTemplate) -> int:
    return t.container_ports()["points"]


POLICY_SETS = [vs for vs in VALUE_SETS if vs.values()["networkPolicy"]["enabled"]]


@pytest.fixture(params=POLICY_SETS, ids=lambda vs: vs.name)
def value_set(request: pytest.FixtureRequest) -> ValueSet:
    """The value sets with networkPolicy.enabled (overrides conftest's)."""
    vs: ValueSet = request.param
    return vs


@pytest.fixture
def policies(objs: list[Obj]) -> list[Obj]:
    return find(objs, "NetworkPolicy")


def test_no_policies_when_disabled() -> None:
    disabled = [vs for vs in VALUE_SETS if vs not in POLICY_SETS]
    assert [vs.name for vs in disabled] == ["no-network-policies"]
    assert find(rendered("no-network-policies"), "NetworkPolicy") == []


@pytest.fixture
def pods(objs: list[Obj]) -> list[PodTemplate]:
    return pod_templates(objs)


def test_default_deny_selects_every_pod(policies: list[Obj], pods: list[PodTemplate]) -> None:
    deny = [p for p in policies if set(policy_types(p)) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert len(deny) == 1, "expected one default-deny policy (Ingress+Egress, no rules)"
    missed = [t.name for t in pods if not selects(deny[0], pod_endpoint(t))]
    assert missed == []
    assert not selects(deny[0], OTHER_APP), "the default deny must not touch other apps' pods"


def test_every_policy_selects_a_pod(policies: list[Obj], pods: list[PodTemplate]) -> None:
    idle = [p["metadata"]["name"] for p in policies
            if not any(selects(p, pod_endpoint(t)) for t in pods)]
    assert idle == []


def test_server_ports(value_set: ValueSet, policies: list[Obj],
                      pods: list[PodTemplate]) -> None:
    servers = [t for t in pods if component(t) == "server"]
    assert len(servers) == 2 * len(value_set.values()["members"])
    problems = []
    for s in servers:
        member = s.labels["points-mesh.io/member"]
        port = server_port(s)
        for src in pods:
            want = (component(src) == "client" and src.labels.get("points-mesh.io/member")
                    == member and src.owner["kind"] == "Job") or component(src) == "test"
            got = allowed(policies, pod_endpoint(src), pod_endpoint(s), port)
            if got != want:
                problems.append(f"{src.name} -> {s.name}:{port} allowed={got}, want {want}")
        if allowed(policies, OTHER_APP, pod_endpoint(s), port):
            problems.append(f"another app's pod reaches {s.name}:{port}")
    assert problems == []


def test_each_client_reaches_both_servers_of_its_member(policies: list[Obj],
                                                          pods: list[PodTemplate]) -> None:
    """Positive flows spelled out: the SPEC's `kubectl logs job/client-<m>` needs these."""
    clients = [t for t in pods if component(t) == "client"]
    assert clients
    for c in clients:
        member = c.labels["points-mesh.io/member"]
        targets = [s for s in pods if component(s) == "server"
                   and s.labels["points-mesh.io/member"] == member]
        assert len(targets) == 2, c.name
        for s in targets:
            assert allowed(policies, pod_endpoint(c), pod_endpoint(s), server_port(s)), \
                f"{c.name} cannot reach {s.name}"


def test_database_port(value_set: ValueSet, policies: list[Obj],
                       pods: list[PodTemplate]) -> None:
    values = value_set.values()
    if values["database"]["enabled"]:
        (db,) = [t for t in pods if component(t) == "database"]
        port = db.container_ports()["mysql"]
        dst = pod_endpoint(db)
        outcome = {t.name: allowed(policies, pod_endpoint(t), dst, port) for t in pods}
        assert outcome == {t.name: component(t) == "server" for t in pods}
        assert not allowed(policies, OTHER_APP, dst, port)
    else:
        port = values["externalDatabase"]["port"]
        outcome = {t.name: allowed(policies, pod_endpoint(t), OUTSIDE, port) for t in pods}
        assert outcome == {t.name: component(t) == "server" for t in pods}


def test_dns_for_every_pod(policies: list[Obj], pods: list[PodTemplate]) -> None:
    for t in pods:
        for protocol in ("UDP", "TCP"):
            assert allowed(policies, pod_endpoint(t), COREDNS, 53, protocol), \
                f"{t.name}: no DNS over {protocol}"
        assert not allowed(policies, pod_endpoint(t), COREDNS, 8080), \
            f"{t.name} reaches CoreDNS beyond port 53"


def test_nothing_else_between_the_pods(value_set: ValueSet, policies: list[Obj],
                                       pods: list[PodTemplate]) -> None:
    """Every port of every pod of the release (protocol, health, database) is closed to every
    other pod of the release but for the flows above; the health port in particular is open
    only to networkPolicy.metricsFrom peers (none by default) and the kubelet."""
    problems = []
    for dst in pods:
        for port_name, port in dst.container_ports().items():
            for src in pods:
                if src is dst:
                    continue
                expected = (
                    (port_name == "points" and component(src) in ("client", "test"))
                    or (port_name == "mysql" and component(src) == "server")
                )
                if allowed(policies, pod_endpoint(src), pod_endpoint(dst), port) and not expected:
                    problems.append(f"{src.name} -> {dst.name}:{port_name}({port})")
    assert problems == []


def test_no_egress_out_of_the_cluster(value_set: ValueSet, policies: list[Obj],
                                      pods: list[PodTemplate]) -> None:
    values: dict[str, Any] = value_set.values()
    external_port = None if values["database"]["enabled"] else values["externalDatabase"]["port"]
    # An ipBlock DNS peer (NodeLocal DNSCache) is an address outside the pod network: port 53
    # to it, and nothing else.
    dns_out = any("ipBlock" in peer for peer in values["networkPolicy"]["dnsExtraTo"])
    for t in pods:
        for port in (80, 443, 3306, 53):
            want = (component(t) == "server" and port == external_port) or (
                port == 53 and dns_out)
            assert allowed(policies, pod_endpoint(t), OUTSIDE, port) == want, (t.name, port)


def test_nodelocal_dns_for_every_pod() -> None:
    """With networkPolicy.dnsExtraTo, every pod of the release may query NodeLocal DNSCache's
    link-local address (UDP and TCP 53) as well as CoreDNS."""
    objs = rendered("nodelocal-dns")
    policies = find(objs, "NetworkPolicy")
    (dns,) = [p for p in policies if p["metadata"]["name"].endswith("-dns")]
    peers = dns["spec"]["egress"][0]["to"]
    assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in peers and len(peers) == 2, peers
    for t in pod_templates(objs):
        for protocol in ("UDP", "TCP"):
            assert allowed(policies, pod_endpoint(t), OUTSIDE, 53, protocol), t.name
            assert allowed(policies, pod_endpoint(t), COREDNS, 53, protocol), t.name


def test_extra_rules_add_to_every_pod() -> None:
    """networkPolicy.extraIngress / extraEgress: one more policy over every pod of the release,
    with exactly the rules given."""
    objs = render("--set", "networkPolicy.extraEgress[0].ports[0].port=4317",
                  "--set", "networkPolicy.extraIngress[0].ports[0].port=9999")
    policies = find(objs, "NetworkPolicy")
    (extra,) = [p for p in policies if p["metadata"]["name"].endswith("-extra")]
    assert extra["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert extra["spec"]["egress"] == [{"ports": [{"port": 4317}]}]
    for t in pod_templates(objs):
        assert allowed(policies, pod_endpoint(t), OUTSIDE, 4317), t.name
        assert not allowed(policies, pod_endpoint(t), OUTSIDE, 4318), t.name
        assert allowed(policies, OTHER_APP, pod_endpoint(t), 9999), t.name
    defaults = find(render(), "NetworkPolicy")
    assert not [p for p in defaults if p["metadata"]["name"].endswith("-extra")]


# ---------------------------------------------------------------- the evaluator itself

def test_selector_matcher() -> None:
    labels = {"a": "1", "b": "2"}
    assert selector_matches({}, labels)
    assert selector_matches({"matchLabels": {"a": "1"}}, labels)
    assert not selector_matches({"matchLabels": {"a": "2"}}, labels)
    expr = [
        ({"key": "a", "operator": "In", "values": ["1", "3"]}, True),
        ({"key": "a", "operator": "In", "values": ["3"]}, False),
        ({"key": "c", "operator": "In", "values": ["1"]}, False),
        ({"key": "a", "operator": "NotIn", "values": ["3"]}, True),
        ({"key": "a", "operator": "NotIn", "values": ["1"]}, False),
        ({"key": "c", "operator": "NotIn", "values": ["1"]}, True),
        ({"key": "b", "operator": "Exists"}, True),
        ({"key": "c", "operator": "Exists"}, False),
        ({"key": "c", "operator": "DoesNotExist"}, True),
        ({"key": "a", "operator": "DoesNotExist"}, False),
    ]
    for e, want in expr:
        assert selector_matches({"matchExpressions": [e]}, labels) is want, e
    assert not selector_matches({"matchLabels": {"a": "1"},
                                 "matchExpressions": [{"key": "b", "operator": "In",
                                                       "values": ["9"]}]}, labels)


def test_evaluator_detects_an_open_port() -> None:
    """Drop one server's ingress rule restriction: the evaluator must see other members'
    clients get in (so the policy tests can fail)."""
    objs = rendered("defaults")
    pods = pod_templates(objs)
    policies = find(objs, "NetworkPolicy")
    s = next(t for t in pods if component(t) == "server")
    member = s.labels["points-mesh.io/member"]
    stranger = next(t for t in pods if component(t) == "client"
                    and t.labels["points-mesh.io/member"] != member)
    assert not allowed(policies, pod_endpoint(stranger), pod_endpoint(s), server_port(s))
    opened = [{"metadata": {"name": "open", "namespace": p["metadata"]["namespace"]},
               "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                        "ingress": [{}], "egress": [{}]}} for p in policies[:1]]
    assert allowed(policies + opened, pod_endpoint(stranger), pod_endpoint(s), server_port(s))
