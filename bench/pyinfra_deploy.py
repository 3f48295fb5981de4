"""pyinfra (v3) equivalent of bench/fixtures/ssh_compare/playbook.yml, used by bench/ssh_compare.sh.

    pyinfra -y --parallel N INVENTORY.py bench/pyinfra_deploy.py

The six tasks, in pyinfra's idiom:
  command + register  -> host.get_fact(Command, "uname -n")  (one round trip per host, run while
                         pyinfra loads the deploy for every host in parallel)
  copy with content   -> files.put from an in-memory file
  template            -> files.template, same Jinja2 source file as the playbook's
  set_fact            -> a Python variable
  shell               -> server.shell
  debug               -> python.call that logs the message (controller only, like Ansible's debug)
"""

import logging
import os
from io import StringIO

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, python, server

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "fixtures", "ssh_compare", "templates", "bench.txt.j2")

# command with register
uname_out = {"stdout": host.get_fact(Command, "uname -n")}

# copy with content
files.put(
    name="copy with content",
    src=StringIO("mixop ssh benchmark\n"),
    dest="/tmp/mixop_bench_copy.txt",
)

# template
files.template(
    name="template",
    src=TEMPLATE,
    dest="/tmp/mixop_bench_template.txt",
    inventory_hostname=host.name,
    uname_out=uname_out,
)

# set_fact
bench_greeting = "hello from {}".format(uname_out["stdout"])

# shell
server.shell(
    name="shell",
    commands=['echo "{}" > /tmp/mixop_bench_shell.txt'.format(bench_greeting)],
)


# debug
def _debug(msg):
    logging.getLogger("pyinfra").info("%s: %s", host.name, msg)


python.call(name="debug", function=_debug, msg=bench_greeting)
