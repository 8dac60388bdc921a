#!/usr/bin/env python3
"""The operator documentation agrees with the code. Needs no PostgreSQL or Redis.

1. README.md's configuration reference (the table under "### Configuration reference") lists
   exactly the keys of the key tables in daemon/config.c (`static const struct cs_key X[]`, each
   row's `.name = "..."`), each under its section: no key of the code missing, no key the code
   does not have, no key listed twice.
2. README.md's metrics reference (the table under "## Metrics reference") lists exactly the
   metric families daemon/*.c registers (met_counter_new / met_gauge_new / met_histogram_new and
   main.c's register_counter / register_gauge, with a "ct_..." name), each with the right type.
   Every "ct_..." string literal in daemon/*.c must be one of those registrations, so a metric
   registered some new way fails here instead of going undocumented.
3. docs/copytraderd.8 and docs/copytraderctl.8 render with groff's man macros without a single
   warning (groff -man -Tutf8 -ww -z; groff comes with Debian's groff-base, which scripts/deps
   installs). No groff: the test fails.
4. `cmake --install` of the build directory into a scratch prefix puts both man pages into
   share/man/man8.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Key table in daemon/config.c -> the section name the README's table uses for it.
TABLE_SECTIONS = {
    "daemon_keys": "daemon",
    "account_keys": "accounts",
    "rule_keys": "copy_rules",
    "secret_keys": "secret file",
}
MAN_PAGES = ("copytraderd.8", "copytraderctl.8")


class Failure(Exception):
    pass


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def code_config_keys(src):
    """{(section, key)} from every cs_key table in daemon/config.c."""
    text = read(os.path.join(src, "daemon", "config.c"))
    tables = re.findall(r"static\s+const\s+struct\s+cs_key\s+(\w+)\s*\[\s*\]\s*=\s*\{(.*?)\n\};",
                        text, re.S)
    if not tables:
        raise Failure("daemon/config.c: no 'static const struct cs_key NAME[] = {...};' tables found "
                      "(did the schema move? update this test)")
    keys = set()
    for name, body in tables:
        if name not in TABLE_SECTIONS:
            raise Failure(f"daemon/config.c: key table {name} is new: document its keys in README.md "
                          f"and map it to a section in TABLE_SECTIONS of {os.path.basename(__file__)}")
        names = re.findall(r'\.name\s*=\s*"([^"]+)"', body)
        if not names:
            raise Failure(f"daemon/config.c: key table {name} has no .name = \"...\" rows")
        keys.update((TABLE_SECTIONS[name], k) for k in names)
    missing = set(TABLE_SECTIONS) - {n for n, _ in tables}
    if missing:
        raise Failure(f"daemon/config.c: key tables {sorted(missing)} not found")
    return keys


def readme_section(readme, heading):
    """Text from the line `heading` to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = readme.split("\n")
    try:
        start = lines.index(heading)
    except ValueError:
        raise Failure(f"README.md: no line '{heading}'")
    out = []
    for line in lines[start + 1:]:
        m = re.match(r"(#+) ", line)
        if m and len(m.group(1)) <= level:
            break
        out.append(line)
    return out


def table_rows(lines, where):
    """Cells of every Markdown table row in lines (header and separator rows dropped)."""
    rows = []
    header = True
    for line in lines:
        if not line.startswith("|"):
            header = True
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header:
            header = False  # the header row; the separator follows
            continue
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        rows.append(cells)
    if not rows:
        raise Failure(f"README.md: no table rows under {where}")
    return rows


def unquote(cell):
    m = re.fullmatch(r"`([^`]+)`", cell)
    return m.group(1) if m else cell


def check_config(src, readme, problems):
    code = code_config_keys(src)
    rows = table_rows(readme_section(readme, "### Configuration reference"), "### Configuration reference")
    doc = []
    for r in rows:
        if len(r) != 6:
            problems.append(f"README.md config reference: row {r} has {len(r)} cells, expected 6 "
                            "(section, key, type, default, bounds, meaning)")
            continue
        doc.append((unquote(r[0]), unquote(r[1])))
    for dup in sorted({k for k in doc if doc.count(k) > 1}):
        problems.append(f"README.md config reference: {dup[0]}.{dup[1]} listed more than once")
    for s, k in sorted(code - set(doc)):
        problems.append(f"README.md config reference: key {s}.{k} (daemon/config.c) is missing")
    for s, k in sorted(set(doc) - code):
        problems.append(f"README.md config reference: key {s}.{k} is not in daemon/config.c")
    return len(code)


REG_RE = re.compile(r"\b(met_counter_new|met_gauge_new|met_histogram_new|register_counter|register_gauge)"
                    r"\s*\(\s*\w+\s*,\s*\"(ct_\w+)\"", re.S)
# Table rows registered in a loop (daemon/copier_cache.c): COUNTER_ROW("ct_...", help, fn).
ROW_RE = re.compile(r"\bCOUNTER_ROW\s*\(\s*\"(ct_\w+)\"", re.S)


def code_metrics(src):
    """{name: type} of every metric family registered in daemon/*.c."""
    found = {}
    literals = {}
    ddir = os.path.join(src, "daemon")
    for fn in sorted(os.listdir(ddir)):
        if not fn.endswith(".c"):
            continue
        text = read(os.path.join(ddir, fn))
        for name in ROW_RE.findall(text):
            if name in found and found[name] != "counter":
                raise Failure(f"daemon/{fn}: {name} registered as counter and {found[name]}")
            found[name] = "counter"
        for call, name in REG_RE.findall(text):
            kind = call.replace("met_", "").replace("register_", "").replace("_new", "")
            if name in found and found[name] != kind:
                raise Failure(f"daemon/{fn}: {name} registered as {kind} and {found[name]}")
            found[name] = kind
        for name in re.findall(r"\"(ct_\w+)\"", text):
            literals.setdefault(name, fn)
    unknown = {n: f for n, f in literals.items() if n not in found}
    if unknown:
        raise Failure("daemon/*.c: metric-like names not registered by a call this test knows "
                      f"(extend REG_RE): {', '.join(f'{n} ({f})' for n, f in sorted(unknown.items()))}")
    if not found:
        raise Failure("daemon/*.c: no metric registrations found (did the registry API change?)")
    return found


def check_metrics(src, readme, problems):
    code = code_metrics(src)
    rows = table_rows(readme_section(readme, "## Metrics reference"), "## Metrics reference")
    doc = {}
    for r in rows:
        if len(r) != 4:
            problems.append(f"README.md metrics reference: row {r} has {len(r)} cells, expected 4 "
                            "(name, type, labels, meaning)")
            continue
        name, kind = unquote(r[0]), r[1]
        if name in doc:
            problems.append(f"README.md metrics reference: {name} listed more than once")
        doc[name] = kind
    for n in sorted(set(code) - set(doc)):
        problems.append(f"README.md metrics reference: {n} ({code[n]}, registered in daemon/) is missing")
    for n in sorted(set(doc) - set(code)):
        problems.append(f"README.md metrics reference: {n} is not registered by the daemon")
    for n in sorted(set(doc) & set(code)):
        if doc[n] != code[n]:
            problems.append(f"README.md metrics reference: {n} is a {code[n]}, the README says {doc[n]}")
    return len(code)


def check_man(src, problems):
    groff = shutil.which("groff")
    if not groff:
        raise Failure("groff not found: install groff-base (scripts/deps does) to check the man pages")
    for page in MAN_PAGES:
        path = os.path.join(src, "docs", page)
        if not os.path.isfile(path):
            problems.append(f"docs/{page}: missing")
            continue
        p = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", path], capture_output=True, text=True,
                           env=dict(os.environ, LC_ALL="C.UTF-8"))
        if p.returncode != 0 or p.stderr.strip():
            problems.append(f"docs/{page}: groff -man -ww reports (exit {p.returncode}):\n{p.stderr.strip()}")
        text = read(path)
        for sect in (".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH SEE ALSO"):
            if sect not in text:
                problems.append(f"docs/{page}: no '{sect}' section")


def check_install(build, problems):
    if not os.path.isfile(os.path.join(build, "cmake_install.cmake")):
        raise Failure(f"{build}: not a configured build directory (no cmake_install.cmake)")
    with tempfile.TemporaryDirectory(prefix="ct-docs-") as tmp:
        p = subprocess.run(["cmake", "--install", build, "--prefix", tmp], capture_output=True, text=True)
        if p.returncode != 0:
            problems.append(f"cmake --install failed (exit {p.returncode}):\n{p.stderr[-2000:]}")
            return
        for page in MAN_PAGES:
            if not os.path.isfile(os.path.join(tmp, "share", "man", "man8", page)):
                problems.append(f"cmake --install did not put {page} into share/man/man8")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    a = ap.parse_args()
    problems = []
    try:
        readme = read(os.path.join(a.source_dir, "README.md"))
        nkeys = check_config(a.source_dir, readme, problems)
        nmet = check_metrics(a.source_dir, readme, problems)
        check_man(a.source_dir, problems)
        check_install(a.build_dir, problems)
    except Failure as e:
        problems.append(str(e))
    if problems:
        print("FAIL test_docs:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print(f"ok: {nkeys} config keys and {nmet} metrics documented, man pages render cleanly and install")
    return 0


if __name__ == "__main__":
    sys.exit(main())
