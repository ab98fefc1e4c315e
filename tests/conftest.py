"""Shared helpers: compile policy text in memory, and a small valid estate to extend."""

from __future__ import annotations

import datetime as dt

import pytest

from compiler.diagnostics import Diagnostic, Diagnostics
from compiler.model import Model
from compiler.project import build_model

TODAY = dt.date(2026, 11, 25)

# A small valid estate. Line numbers matter to a few tests: keep additions at the end.
BASE = """\
site eqiad {
  description "Ashburn"
  router cr1-eqiad loopback 208.80.154.196 2620:0:861:ffff::1 asn 14907
  router cr2-eqiad loopback 208.80.154.197 2620:0:861:ffff::2 asn 14907
  row a {
    switch asw2-a-eqiad
    subnet 10.64.0.0/22 2620:0:861:101::/64 description "private1-a-eqiad"
    subnet 208.80.154.0/26 description "public1-a-eqiad"
    gateway 10.64.0.1 2620:0:861:101::1
    rack a4 {
      host kafka1001 10.64.0.10 2620:0:861:101::10 roles kafka-broker
      host bast1001 208.80.154.10 roles bastion description "bastion"
    }
  }
  row b {
    switch asw2-b-eqiad asn 64700
    subnet 10.64.16.0/22
    gateway 10.64.16.1
    rack b2 {
      host kube1001 10.64.16.11 roles k8s-worker
      host kube1002 10.64.16.12 roles k8s-worker, prometheus
    }
  }
  row e {
    spine ssw1-e1-eqiad asn 64810 uplink cr1-eqiad, cr2-eqiad
    rack e1 {
      switch lsw1-e1-eqiad asn 64811
      subnet 10.64.130.0/24 2620:0:861:109::/64
      gateway 10.64.130.1 2620:0:861:109::1
      host kube1003 10.64.130.11 2620:0:861:109::11 roles k8s-worker
    }
  }
}

cluster wikikube-eqiad {
  description "main kubernetes cluster"
  site eqiad
  asn 64601
  pods 10.64.64.0/21 2620:0:861:cabe::/64
  services 10.64.72.0/24
  nodes role k8s-worker
  peer-with routers
}

network internal = 10.0.0.0/8, 2620:0:860::/46
network monitoring = role prometheus

service kafka = tcp 9092, 9093
service dns = udp 53, tcp 53

role kafka-broker {
  allow service kafka from network internal
}
role bastion { allow tcp 22 from any exposed "the way in from outside" }
role k8s-worker { allow tcp 10250 from network monitoring }
role prometheus { connect tcp 9100 to role k8s-worker }
default role base {
  allow tcp 22 from role bastion
}

app web {
  cluster wikikube-eqiad
  listen tcp 8080
  connect to app api
}
app api {
  clusters wikikube-eqiad
  listen tcp 9000, 9001
  allow from app web
}
"""


def compile_sources(sources: dict[str, str]) -> tuple[Model | None, list[Diagnostic]]:
    """Compile in memory; the model (None on errors) and the sorted diagnostics."""
    diags = Diagnostics()
    model = build_model(sources, diags, today=TODAY)
    return model, diags.sorted()


def compile_text(text: str, path: str = "a.npl") -> tuple[Model | None, list[Diagnostic]]:
    return compile_sources({path: text})


def errors(diags: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity == "error"]


@pytest.fixture
def base() -> str:
    return BASE
