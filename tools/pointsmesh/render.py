"""Render every derived file from protocol/protocol.toml and roster.yaml.

    python -m pointsmesh.render          # write the files
    python -m pointsmesh.render --check  # exit 1 and name the files that differ
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jinja2

from . import ROOT, project_version
from .render_chart import chart_targets
from .render_compose import compose_targets
from .render_k8s import k8s_targets
from .spec import Member, Protocol, Setting, load_protocol, load_roster, reply_regex

HEADER = "Generated from protocol/protocol.toml by `make render`. Do not edit."


def c_str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        elif 0 < ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch):03o}")  # octal: a following digit cannot extend it
        else:
            raise ValueError(f"non-ASCII character in C string: {s!r}")
    out.append('"')
    return "".join(out)


def c_ident(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", s).upper()


def reply_printf(fmt: str) -> str:
    """Turn the {user}/{points}/{last_update} template into a printf format."""
    names = re.findall(r"\{(\w+)\}", fmt)
    if names != ["user", "points", "last_update"]:
        raise ValueError("reply.format must use {user}, {points}, {last_update} in that order")
    out = fmt.replace("%", "%%")
    return (
        out.replace("{user}", "%s").replace("{points}", "%lld").replace("{last_update}", "%s")
    )


TEMPLATES = ROOT / "protocol" / "templates"
PY_HANDWRITTEN = ROOT / "protocol" / "python"
PY_PACKAGES = {
    "server": ROOT / "services/py-server/src/points_server/generated",
    "client": ROOT / "clients/py-client/src/points_client/generated",
}


@dataclass(frozen=True)
class Program:
    """One kind of program with its own settings table: server or client."""

    name: str
    prefix: str  # of the C enum values
    settings: tuple[Setting, ...]


def py(v: object) -> str:
    """A Python literal for a str/int/float/bool/tuple (strings always double-quoted)."""
    if isinstance(v, bool):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, tuple):
        inner = ", ".join(py(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    return repr(v)


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(c_str=c_str, c_ident=c_ident, py=py, pyb=lambda v: repr(v.encode()),
                       sql=sql_literal, md=lambda v: v.replace("|", "\\|"))
    return env


def render_template(name: str, p: Protocol) -> str:
    """Render protocol/templates/<name> with the protocol and its derived values."""
    programs = (
        Program("server", "PTS_SET", p.server_settings),
        Program("client", "PTS_CSET", p.client_settings),
    )
    db_ops = next(m for m in p.metrics if m.name == "points_db_errors_total").label_values["op"]
    tls_results = next(m for m in p.metrics
                       if m.name == "points_tls_handshakes_total").label_values["result"]
    return _environment().get_template(name).render(
        header=HEADER,
        release=project_version(),
        p=p,
        programs=programs,
        db_ops=db_ops,
        tls_results=tls_results,
        reply_printf=reply_printf(p.reply_format),
        reply_regex=reply_regex(p.reply_format.rstrip("\n")),
    )


def _py_targets(p: Protocol) -> dict[Path, Callable[[], str]]:
    """Each Python package's generated/ folder: the protocol module from its template, and the
    hand-written modules of protocol/python/ copied (one source, two packages and images)."""
    out: dict[Path, Callable[[], str]] = {}
    for pkg in PY_PACKAGES.values():
        out[pkg / "__init__.py"] = partial(str, f'"""{HEADER}"""\n')
        out[pkg / "protocol.py"] = partial(render_template, "protocol.py.j2", p)
        for src in sorted(PY_HANDWRITTEN.glob("*.py")):
            out[pkg / src.name] = partial(_copied, src)
    out[PY_PACKAGES["server"] / "log_events.py"] = partial(render_template, "log_events.py.j2", p)
    return out


def _copied(src: Path) -> str:
    rel = src.relative_to(ROOT)
    text = src.read_text()
    first, _, rest = text.partition("\n")
    if not first.startswith('"""'):
        raise ValueError(f"{rel}: must start with a docstring line")
    return f'{first}\n\nCopied from {rel} by `make render`. Do not edit this copy.\n{rest}'


def sql_literal(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


def render_seed(members: tuple[Member, ...], time_zone: str = "+08:00") -> str:
    # The Helm chart renders the same text from its values (templates/_helpers.tpl,
    # points-mesh.seedSql); tests/chart checks that both agree byte for byte.
    return _environment().get_template("seed.sql.j2").render(members=members,
                                                             time_zone=time_zone)


def render_reference(p: Protocol) -> str:
    """docs/reference.md: the operator's view of protocol.toml."""
    buckets = ", ".join(f"{b:g}" for b in p.duration_buckets)
    return _environment().get_template("reference.md.j2").render(p=p, buckets=buckets)


def targets() -> dict[Path, Callable[[], str]]:
    """Every rendered file and the function that produces its text."""
    p = load_protocol()
    members = load_roster()
    out: dict[Path, Callable[[], str]] = {
        ROOT / "protocol/generated/points_protocol.h": lambda: render_template(
            "points_protocol.h.j2", p
        ),
        ROOT / "protocol/generated/points_protocol.c": lambda: render_template(
            "points_protocol.c.j2", p
        ),
        ROOT / "services/c-server/src/generated/log_events.h": lambda: render_template(
            "log_events.h.j2", p
        ),
        **_py_targets(p),
        ROOT / "sql/02-seed.sql": lambda: render_seed(members, p.default("DB_TIMEZONE")),
        ROOT / "docs/reference.md": lambda: render_reference(p),
        **compose_targets(),
        **chart_targets(),
        **k8s_targets(),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    args = ap.parse_args(argv)
    drift = []
    for path, make in targets().items():
        text = make()
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        rel = path.relative_to(ROOT)
        if args.check:
            drift.append(str(rel))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"rendered {rel}")
    if drift:
        print("out of date (run `make render`): " + ", ".join(drift), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
