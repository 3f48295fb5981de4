#!/usr/bin/env python3
"""How much real Ansible content mixop accepts: `mixop check` against
`ansible-playbook --syntax-check` on every playbook of the repositories given.

Usage: bench/corpus_check.py [--mixop BIN] [--ansible-playbook BIN] DIR...

A playbook is a YAML file whose top level is a list of plays (`hosts:` or
`import_playbook:`). Each is checked from its own directory with an inventory
found beside it (hosts, inventory, hosts.ini, inventory.yml, ...) or an empty
one. Prints a table per repository and the causes of mixop's refusals, ranked.
The repositories are read, not copied: fetch them yourself (they are not ours).
"""
import argparse, collections, os, re, subprocess, sys, tempfile

import yaml


def is_playbook(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except Exception:
        return False
    return (
        isinstance(doc, list)
        and doc
        and all(isinstance(p, dict) for p in doc)
        and any("hosts" in p or "import_playbook" in p or "ansible.builtin.import_playbook" in p for p in doc)
    )


def playbooks(root):
    skip = {".git", "roles", "group_vars", "host_vars", "templates", "files", "vars",
            "defaults", "tasks", "handlers", "meta", "molecule", ".github", "collections"}
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in skip)
        for f in sorted(files):
            if f.endswith((".yml", ".yaml")):
                p = os.path.join(d, f)
                if is_playbook(p):
                    yield p


def inventory_for(pb, root, empty):
    d = os.path.dirname(pb)
    while True:
        for name in ("inventory.yml", "inventory.yaml", "hosts.ini", "inventory.ini", "hosts", "inventory"):
            cand = os.path.join(d, name)
            if os.path.isfile(cand):
                return cand
        if os.path.samefile(d, root) or d == "/":
            return empty
        d = os.path.dirname(d)


def cause(text):
    """One short, comparable reason from mixop's error output."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("warning", "[WARNING]")):
            continue
        line = re.sub(r"^(error(\[[^\]]*\])?:\s*)", "", line)
        line = re.sub(r"`[^`]*`", "`X`", line)
        line = re.sub(r"'[^']*'", "'X'", line)
        line = re.sub(r"\S+\.ya?ml(:\d+)*(:\d+)?", "FILE", line)
        return line[:110]
    return "(no message)"


def run(cmd, cwd):
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, NO_COLOR="1", ANSIBLE_NOCOLOR="1"))
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        return -1, "timeout"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixop", default="mixop")
    ap.add_argument("--ansible-playbook", default="ansible-playbook")
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    empty = tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False)
    empty.write("localhost ansible_connection=local\n")
    empty.close()
    causes = collections.Counter()
    total = collections.Counter()
    print("| repository | playbooks | mixop check accepts | ansible-playbook --syntax-check accepts | both |")
    print("|---|---|---|---|---|")
    rows = []
    for root in a.dirs:
        root = os.path.abspath(root)
        n = m_ok = a_ok = both = 0
        for pb in playbooks(root):
            inv = inventory_for(pb, root, empty.name)
            cwd = os.path.dirname(pb)
            mrc, mout = run([a.mixop, "check", pb, "-i", inv], cwd)
            arc, _ = run([a.ansible_playbook, "--syntax-check", pb, "-i", inv], cwd)
            n += 1
            m_ok += mrc == 0
            a_ok += arc == 0
            both += mrc == 0 and arc == 0
            if mrc != 0:
                c = cause(mout)
                causes[c] += 1
                rows.append((os.path.relpath(pb, os.path.dirname(root)), mrc, arc, c))
        total.update(n=n, m=m_ok, a=a_ok, b=both)
        print(f"| {os.path.basename(root)} | {n} | {m_ok} | {a_ok} | {both} |")
    print(f"| **all** | {total['n']} | {total['m']} | {total['a']} | {total['b']} |")
    print("\nmixop's refusals, by cause:\n")
    print("| playbooks | cause |\n|---|---|")
    for c, k in causes.most_common():
        print(f"| {k} | {c} |")
    print("\nEach refusal (playbook, mixop rc, ansible rc, cause):\n")
    for r in rows:
        print(f"- {r[0]}: mixop {r[1]}, ansible {r[2]}: {r[3]}")


if __name__ == "__main__":
    sys.exit(main())
