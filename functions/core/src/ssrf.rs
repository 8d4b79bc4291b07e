//! Where tidings may send a request: never to this machine, a private network, link-local or
//! metadata addresses, or any other range that is not the public internet. The check is made on
//! the address actually connected to (after DNS), so a name that resolves to 127.0.0.1 is
//! refused like the literal, and a DNS answer cannot change between check and connect.
//! An allow-list of networks (CIDRs) opens specific ranges for tests and `tidings dev`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network in CIDR form (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, canonical(address)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network: IpAddr = address.trim().parse().map_err(|_| format!("{text:?} is not an IP network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix.parse::<u8>().map_err(|_| format!("{text:?}: bad prefix length"))?
        };
        if prefix > max {
            return Err(format!("{text:?}: prefix longer than the address"));
        }
        Ok(Cidr { network: canonical(network), prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// IPv4 addresses written as IPv6 are judged as IPv4: mapped (`::ffff:127.0.0.1`),
/// translated (`::ffff:0:127.0.0.1`, RFC 2765) and compatible (`::127.0.0.1`). The prefixes
/// that reach IPv4 through a gateway (NAT64, 6to4) are refused whole in `refusal_v6`.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                // Translated ::ffff:0:a.b.c.d; compatible (deprecated) ::a.b.c.d, but not :: or ::1.
                let translated = s[..6] == [0, 0, 0, 0, 0xffff, 0];
                let compatible = s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1);
                if translated || compatible {
                    IpAddr::V4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])))
                } else {
                    IpAddr::V6(v6)
                }
            }
        },
        v4 => v4,
    }
}

/// Why an address is refused; `None` when it is public.
pub fn refusal(address: IpAddr) -> Option<&'static str> {
    match canonical(address) {
        IpAddr::V4(ip) => refusal_v4(ip),
        IpAddr::V6(ip) => refusal_v6(ip),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "'this network' (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "carrier-grade NAT (100.64.0.0/10)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local, including instance metadata (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation (TEST-NET)",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) => "reserved or broadcast (240.0.0.0/4)",
        _ => return None,
    })
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s[0] {
        _ if ip.is_unspecified() => "unspecified (::)",
        _ if ip.is_loopback() => "loopback (::1)",
        0x64 if s[1] == 0xff9b => "NAT64 (64:ff9b::/96), which reaches IPv4 addresses",
        0x100 if s[1..4] == [0, 0, 0] => "discard-only (100::/64)",
        0x2001 if s[1] < 0x200 => "IETF protocol assignments, Teredo (2001::/23)",
        0x2001 if s[1] == 0xdb8 => "documentation (2001:db8::/32)",
        0x2002 => "6to4 (2002::/16), which reaches IPv4 addresses",
        0xfc00..=0xfdff => "unique local (fc00::/7)",
        0xfe80..=0xfebf => "link-local (fe80::/10)",
        0xfec0..=0xfeff => "site-local (fec0::/10)",
        0xff00..=0xffff => "multicast (ff00::/8)",
        // The EC2 metadata service also answers on fd00:ec2::254 (covered by fc00::/7).
        _ => return None,
    })
}

/// Decides which addresses outbound requests may connect to.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Vec<Cidr>,
}

impl Guard {
    /// Refuses every non-public address.
    pub fn new() -> Self {
        Guard::default()
    }

    /// Also allows these networks (tests, `tidings dev`: `127.0.0.0/8`).
    pub fn allowing(allowed: Vec<Cidr>) -> Self {
        Guard { allowed }
    }

    /// `Ok` when a connection to `address` is allowed, else why not.
    pub fn check(&self, address: IpAddr) -> Result<(), Blocked> {
        if self.allowed.iter().any(|net| net.contains(address)) {
            return Ok(());
        }
        match refusal(address) {
            Some(network) => Err(Blocked { address, network }),
            None => Ok(()),
        }
    }
}

/// A connection the [`Guard`] refused: the address, and the kind of network it lies in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{address} is {network}; refused (add it to the allow-list to permit it)")]
pub struct Blocked {
    pub address: IpAddr,
    /// `private (10.0.0.0/8)`, `loopback (127.0.0.0/8)`, …
    pub network: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> bool {
        refusal(text.parse().unwrap()).is_some()
    }

    #[test]
    fn private_loopback_metadata_and_special_ranges_are_refused() {
        for address in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.10",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:127.0.0.1",
            "::ffff:0:10.0.0.1",
            "::ffff:0:a9fe:a9fe",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(refused(address), "{address} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "::ffff:0:8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert!(!refused(address), "{address} is public");
        }
    }

    #[test]
    fn the_allow_list_opens_exactly_its_networks() {
        let guard = Guard::allowing(vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()]);
        assert!(guard.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(guard.check("::ffff:127.0.0.1".parse().unwrap()).is_ok(), "mapped loopback is loopback");
        assert!(guard.check("::1".parse().unwrap()).is_ok());
        let err = guard.check("10.0.0.1".parse().unwrap()).unwrap_err();
        assert!(err.network.contains("private"), "{err}");
        assert!(Guard::new().check("127.0.0.1".parse().unwrap()).is_err());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }
}
