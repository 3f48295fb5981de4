//! ansible.utils' `ipaddr`, `ipv4` and `ipv6` filters (the netaddr-based `ipaddr_utils`):
//! validation, and the queries real playbooks use. A query that does not apply gives `none`
//! (as the Python functions return None), an invalid value `false`.

use std::net::{Ipv4Addr, Ipv6Addr};

use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, Value};

/// An address with a prefix length (netaddr's `IPNetwork`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Net {
    ip: u128,
    v6: bool,
    prefix: u32,
}

impl Net {
    fn bits(&self) -> u32 {
        if self.v6 { 128 } else { 32 }
    }
    fn hostmask(&self) -> u128 {
        let host_bits = self.bits() - self.prefix;
        if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        }
    }
    fn netmask(&self) -> u128 {
        let all = if self.v6 { u128::MAX } else { u32::MAX as u128 };
        all & !self.hostmask()
    }
    fn network(&self) -> u128 {
        self.ip & self.netmask()
    }
    /// None for /31, /32 (and /127, /128), like netaddr.
    fn broadcast(&self) -> Option<u128> {
        (self.bits() - self.prefix > 1).then(|| self.network() | self.hostmask())
    }
    fn size(&self) -> u128 {
        self.hostmask().saturating_add(1)
    }
    fn fmt_ip(&self, ip: u128) -> String {
        if self.v6 {
            Ipv6Addr::from(ip).to_string()
        } else {
            Ipv4Addr::from(ip as u32).to_string()
        }
    }
    fn ip_str(&self) -> String {
        self.fmt_ip(self.ip)
    }
    fn cidr_str(&self) -> String {
        format!("{}/{}", self.ip_str(), self.prefix)
    }
    fn contains(&self, other: &Net) -> bool {
        self.v6 == other.v6
            && other.prefix >= self.prefix
            && other.network() & self.netmask() == self.network()
    }
}

/// Parses an address, `addr/prefix` or `addr/netmask`; `network` says a prefix was written.
fn parse(s: &str) -> Option<(Net, bool)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let (ip, v6) = if let Ok(a) = addr.parse::<Ipv4Addr>() {
        (u32::from(a) as u128, false)
    } else if let Ok(a) = addr.parse::<Ipv6Addr>() {
        (u128::from(a), true)
    } else {
        return None;
    };
    let bits = if v6 { 128 } else { 32 };
    let prefix = match prefix {
        None => bits,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u32>().ok().filter(|p| *p <= bits)?
        }
        Some(p) if !v6 => {
            // A dotted netmask (contiguous ones).
            let m = u32::from(p.parse::<Ipv4Addr>().ok()?);
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return None;
            }
            m.leading_ones()
        }
        Some(_) => return None,
    };
    Some((Net { ip, v6, prefix }, s.contains('/')))
}

/// A value as ipaddr reads it: an integer (IPv4 if it fits, unless `version` is 6), an
/// address or network, or a numerical `int/prefix`. Returns the net and whether it is written
/// as a network.
fn read(value: &str, version: u8) -> Option<(Net, bool)> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let n: u128 = value.parse().ok()?;
        let v6 = version == 6 || n > u32::MAX as u128;
        let prefix = if v6 { 128 } else { 32 };
        return Some((Net { ip: n, v6, prefix }, false));
    }
    if let Some(found) = parse(value) {
        return Some(found);
    }
    let (a, p) = value.split_once('/')?;
    let (n, prefix): (u128, u32) = (a.parse().ok()?, p.parse().ok()?);
    let v6 = n > u32::MAX as u128 || prefix > 32;
    (prefix <= if v6 { 128 } else { 32 }).then_some((Net { ip: n, v6, prefix }, true))
}

/// netaddr's `is_global` (IANA special-purpose registries), for `private`/`public`.
fn is_global(n: &Net) -> bool {
    const V4_NOT_GLOBAL: &[(&str, u32)] = &[
        ("0.0.0.0", 8),
        ("10.0.0.0", 8),
        ("100.64.0.0", 10),
        ("127.0.0.0", 8),
        ("169.254.0.0", 16),
        ("172.16.0.0", 12),
        ("192.0.0.0", 24),
        ("192.0.2.0", 24),
        ("192.168.0.0", 16),
        ("198.18.0.0", 15),
        ("198.51.100.0", 24),
        ("203.0.113.0", 24),
        ("240.0.0.0", 4),
        ("255.255.255.255", 32),
    ];
    const V4_EXCEPTIONS: &[&str] = &["192.0.0.9", "192.0.0.10"];
    const V6_NOT_GLOBAL: &[(&str, u32)] = &[
        ("::1", 128),
        ("::", 128),
        ("::ffff:0:0", 96),
        ("64:ff9b:1::", 48),
        ("100::", 64),
        ("2001::", 23),
        ("2001:db8::", 32),
        ("2002::", 16),
        ("fc00::", 7),
        ("fe80::", 10),
    ];
    const V6_EXCEPTIONS: &[(&str, u32)] = &[
        ("2001:1::1", 128),
        ("2001:1::2", 128),
        ("2001:3::", 32),
        ("2001:4:112::", 48),
        ("2001:20::", 28),
        ("2001:30::", 28),
    ];
    let host = Net {
        prefix: n.bits(),
        ..*n
    };
    let within = |list: &[(&str, u32)]| {
        list.iter()
            .any(|(a, p)| parse(&format!("{a}/{p}")).is_some_and(|(net, _)| net.contains(&host)))
    };
    if n.v6 {
        within(V6_EXCEPTIONS) || !within(V6_NOT_GLOBAL)
    } else {
        V4_EXCEPTIONS.contains(&host.ip_str().as_str()) || !within(V4_NOT_GLOBAL)
    }
}

fn s(v: String) -> Value {
    Value::from(v)
}

/// One query on one parsed value (`ipaddr_utils.ipaddr` after parsing).
fn query(n: &Net, network: bool, value: &Value, q: &str) -> Result<Value, Error> {
    let none = Value::from(());
    let size = n.size();
    // `address`: a host address, not the network address of a network with a broadcast.
    let is_host = size == 1 || n.ip != n.network() || n.broadcast().is_none() || n.v6;
    Ok(match q {
        "" => {
            if network {
                s(n.cidr_str())
            } else {
                s(n.ip_str())
            }
        }
        "address" | "ip" => {
            if is_host {
                s(n.ip_str())
            } else {
                none
            }
        }
        "host" => {
            if size == 1 || n.ip != n.network() || n.broadcast().is_none() {
                s(n.cidr_str())
            } else {
                none
            }
        }
        "bool" => Value::from(true),
        "broadcast" => match n.broadcast().filter(|_| size > 2) {
            Some(b) => s(n.fmt_ip(b)),
            None => none,
        },
        "cidr" => s(n.cidr_str()),
        "network/prefix" | "subnet" => s(format!("{}/{}", n.fmt_ip(n.network()), n.prefix)),
        "network" | "network_id" => s(n.fmt_ip(n.network())),
        "netmask" => s(n.fmt_ip(n.netmask())),
        "hostmask" | "wildcard" => s(n.fmt_ip(n.hostmask())),
        "prefix" => Value::from(n.prefix),
        "size" => Value::from(size),
        "size_usable" => Value::from(match size {
            1 => 0,
            2 => 2,
            _ => size - 2,
        }),
        "net" => {
            if size > 1 && n.ip == n.network() {
                s(format!("{}/{}", n.fmt_ip(n.network()), n.prefix))
            } else {
                none
            }
        }
        "type" => Value::from(if size == 1 || n.ip != n.network() {
            "address"
        } else {
            "network"
        }),
        "version" => Value::from(if n.v6 { 6 } else { 4 }),
        "ip/prefix" => {
            if size == 2 || (size > 1 && n.ip != n.network()) {
                s(n.cidr_str())
            } else {
                none
            }
        }
        "ip_netmask" => {
            if size == 2 || (size > 1 && n.ip != n.network()) {
                s(format!("{} {}", n.ip_str(), n.fmt_ip(n.netmask())))
            } else {
                none
            }
        }
        "network_netmask" => s(format!(
            "{} {}",
            n.fmt_ip(n.network()),
            n.fmt_ip(n.netmask())
        )),
        "network_wildcard" => s(format!(
            "{} {}",
            n.fmt_ip(n.network()),
            n.fmt_ip(n.hostmask())
        )),
        "address/prefix" | "gateway" | "gw" | "host/prefix" | "hostnet" | "router" => {
            let edge = n.ip == n.network() || Some(n.ip) == n.broadcast();
            if size > 2 && edge {
                Value::from(false)
            } else {
                s(n.cidr_str())
            }
        }
        "ipv4" | "v4" => {
            if !n.v6 {
                value.clone()
            } else if n.ip >> 32 == 0xffff {
                // netaddr's ipv4(): only IPv4-mapped (or compatible) addresses convert.
                s(format!(
                    "{}/{}",
                    Ipv4Addr::from(n.ip as u32),
                    n.prefix.saturating_sub(96)
                ))
            } else if n.ip >> 32 == 0 {
                s(format!(
                    "{}/{}",
                    Ipv4Addr::from(n.ip as u32),
                    n.prefix.saturating_sub(96)
                ))
            } else {
                Value::from(false)
            }
        }
        "ipv6" | "v6" => {
            if n.v6 {
                value.clone()
            } else {
                let mapped = Net {
                    ip: 0xffff_0000_0000 | n.ip,
                    v6: true,
                    prefix: n.prefix + 96,
                };
                s(mapped.cidr_str())
            }
        }
        "private" => {
            if is_global(n) {
                none
            } else {
                value.clone()
            }
        }
        "public" => {
            let host = Net {
                prefix: n.bits(),
                ..*n
            };
            let multicast = if n.v6 {
                n.ip >> 120 == 0xff
            } else {
                n.ip >> 28 == 0xe
            };
            let loopback = if n.v6 { n.ip == 1 } else { n.ip >> 24 == 127 };
            let all = if n.v6 { u128::MAX } else { u32::MAX as u128 };
            // netaddr's is_netmask / is_hostmask on the address.
            let is_netmask = (!n.ip & all).wrapping_add(1) & (!n.ip & all) == 0;
            let is_hostmask = n.ip.wrapping_add(1) & n.ip == 0;
            if !multicast && is_global(&host) && !loopback && !is_netmask && !is_hostmask {
                value.clone()
            } else {
                none
            }
        }
        "loopback" | "lo" => {
            let lo = if n.v6 { n.ip == 1 } else { n.ip >> 24 == 127 };
            if lo { value.clone() } else { none }
        }
        "multicast" => {
            let mc = if n.v6 {
                n.ip >> 120 == 0xff
            } else {
                n.ip >> 28 == 0xe
            };
            if mc { value.clone() } else { none }
        }
        "link-local" => {
            let ll = if n.v6 {
                n.ip >> 118 == 0x3fa
            } else {
                n.ip >> 16 == 0xa9fe
            };
            if ll { value.clone() } else { none }
        }
        "wrap" => {
            if !n.v6 {
                value.clone()
            } else if network {
                s(format!("[{}]/{}", n.ip_str(), n.prefix))
            } else {
                s(format!("[{}]", n.ip_str()))
            }
        }
        "first_usable" | "last_usable" | "next_usable" | "previous_usable" | "range_usable" => {
            if !network {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "Not a network address",
                ));
            }
            if size <= 1 {
                return Ok(none);
            }
            let (first, last) = if size == 2 {
                (n.network(), n.network() + 1)
            } else {
                (n.network() + 1, n.network() + size - 2)
            };
            match q {
                "first_usable" => s(n.fmt_ip(first)),
                "last_usable" => s(n.fmt_ip(last)),
                "range_usable" => s(format!("{}-{}", n.fmt_ip(first), n.fmt_ip(last))),
                "next_usable" => match n.ip.checked_add(1).filter(|x| (first..=last).contains(x)) {
                    Some(x) => s(n.fmt_ip(x)),
                    None => none,
                },
                _ => match n.ip.checked_sub(1).filter(|x| (first..=last).contains(x)) {
                    Some(x) => s(n.fmt_ip(x)),
                    None => none,
                },
            }
        }
        "int" => {
            if network {
                s(format!("{}/{}", n.ip, n.prefix))
            } else {
                Value::from(n.ip)
            }
        }
        "revdns" => {
            if n.v6 {
                let hex = format!("{:032x}", n.ip);
                let mut parts: Vec<String> = hex.chars().rev().map(String::from).collect();
                parts.push("ip6.arpa.".into());
                s(parts.join("."))
            } else {
                let o = (n.ip as u32).to_be_bytes();
                s(format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]))
            }
        }
        other => {
            // Another network: is the value inside it?
            if let Some((outer, _)) =
                parse(other).filter(|_| !other.bytes().all(|b| b.is_ascii_digit()))
            {
                return Ok(if outer.contains(n) {
                    value.clone()
                } else {
                    none
                });
            }
            // An index into the network.
            let Ok(idx) = other.parse::<i128>() else {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("ipaddr: unknown filter type: {other}"),
                ));
            };
            if size == 1 {
                return Ok(if network {
                    s(n.cidr_str())
                } else {
                    s(n.ip_str())
                });
            }
            let base = if idx >= 0 {
                (n.network() as i128).checked_add(idx)
            } else {
                ((n.network() + size - 1) as i128).checked_add(idx + 1)
            };
            match base.filter(|b| *b >= n.network() as i128 && *b < (n.network() + size) as i128) {
                Some(b) => s(format!("{}/{}", n.fmt_ip(b as u128), n.prefix)),
                None => Value::from(false),
            }
        }
    })
}

/// `ipaddr(value, query, version)`: lists are mapped and their false results dropped.
pub fn ipaddr(value: &Value, q: &str, version: u8) -> Result<Value, Error> {
    if value.kind() == ValueKind::Seq {
        let mut out = Vec::new();
        for item in value.try_iter()? {
            let r = ipaddr(&item, q, version)?;
            if r.is_true() {
                out.push(r);
            }
        }
        return Ok(Value::from(out));
    }
    if !value.is_true() || value.kind() == ValueKind::Bool {
        return Ok(Value::from(false));
    }
    let text = match value.as_str() {
        Some(t) => t.to_string(),
        None => value.to_string(),
    };
    let Some((n, network)) = read(&text, version) else {
        return Ok(Value::from(false));
    };
    // A value written as an integer continues as its address text.
    let shown = if text.bytes().all(|b| b.is_ascii_digit()) {
        Value::from(n.cidr_str())
    } else {
        value.clone()
    };
    if version != 0 && u8::from(n.v6) * 2 + 4 != version {
        return Ok(Value::from(false));
    }
    query(&n, network, &shown, q)
}

/// The query argument as text (`ipaddr(5)` and `ipaddr('5')` alike).
pub fn query_text(q: Option<&Value>) -> String {
    match q {
        None => String::new(),
        Some(v) if v.is_none() || v.is_undefined() => String::new(),
        Some(v) => v.as_str().map_or_else(|| v.to_string(), str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (value, query, version) → result that ansible.utils' ipaddr gave (see
    /// scripts/ipaddr_cases.py); "ERR" where it raised.
    #[test]
    fn matches_ansible_utils() {
        let cases: Vec<(String, String, u8, serde_json::Value)> =
            serde_json::from_str(include_str!("testdata/ipaddr_cases.json")).unwrap();
        let mut wrong = Vec::new();
        for (v, q, ver, want) in &cases {
            let got = match ipaddr(&Value::from(v.as_str()), q, *ver) {
                Ok(r) => crate::template::objects::to_json(&r).unwrap(),
                Err(_) => serde_json::Value::from("ERR"),
            };
            if &got != want {
                wrong.push(format!(
                    "{v:?} | ipaddr({q:?}) v{ver}: got {got}, want {want}"
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} differ:\n{}",
            wrong.len(),
            cases.len(),
            wrong.join("\n")
        );
    }

    #[test]
    fn lists_keep_what_matches() {
        let v = Value::from(vec!["10.0.0.1", "x", "fe80::1", "192.168.0.1/24"]);
        let r = ipaddr(&v, "", 4).unwrap();
        assert_eq!(r.to_string(), "['10.0.0.1', '192.168.0.1/24']");
    }
}
