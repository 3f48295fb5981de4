import json, sys
# Generates src/template/testdata/ipaddr_cases.json from ansible.utils (the `ansible` PyPI
# bundle) and netaddr: PYTHONPATH=<ansible_collections parent>:<netaddr site-packages> python3 this.py
from ansible_collections.ansible.utils.plugins.plugin_utils.base.ipaddr_utils import ipaddr
vals=["192.168.1.5","192.168.1.0/24","192.168.1.5/24","10.0.0.1/255.255.255.0","fe80::1","2001:db8::1/64","2001:db8::/64","8.8.8.8","172.16.5.4","10.1.1.1/31","10.1.1.1/32","hostname","", "3232235777", "0.0.0.0/0", "100.64.0.1","224.0.0.1","::ffff:10.0.0.1","127.0.0.1","1.1.1.1/24","169.254.3.4"]
qs=["","address","network","netmask","prefix","host","ipv4","ipv6","private","public","net","size","cidr","subnet","broadcast","type","wrap","first_usable","last_usable","range_usable","next_usable","10.0.0.0/8","192.168.0.0/16","5","-1","0","link-local","loopback","multicast","ip/prefix","host/prefix","revdns","int","version"]
out=[]
for v in vals:
    for q in qs:
        try:
            r=ipaddr(v,q)
        except Exception as e:
            r="ERR"
        out.append([v,q,0,r])
for v in vals[:8]:
    for q in ["","address"]:
        for ver in (4,6):
            try: r=ipaddr(v,q,ver)
            except Exception: r="ERR"
            out.append([v,q,ver,r])
print(json.dumps(out))
