//! The client's address, in one place: the peer of the connection, or,
//! when that peer is one of the operator's `TRUSTED_PROXIES`, the address
//! the proxies recorded in `X-Forwarded-For`. Security events, the rate
//! limiter's key for anonymous clients and the access log all ask here, so
//! they agree on one address per request.
//!
//! `X-Forwarded-For` is read only from a trusted peer, and from the right:
//! each proxy appends the address it received the request from, so the
//! right-most entry that is not a trusted proxy is the first hop no trusted
//! proxy vouches for, the client. Anything to its left was written by the
//! client and is ignored. A request from any other peer is taken at its
//! peer address, whatever headers it carries.

use std::{net::IpAddr, str::FromStr};

use actix_web::{http::header::HeaderMap, web, HttpMessage, HttpRequest};
use ipnet::IpNet;

const FORWARDED_FOR: &str = "x-forwarded-for";

/// The proxies whose `X-Forwarded-For` is believed: addresses and CIDR
/// ranges. Empty (the default): the peer is always the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR ranges
    /// (`10.0.0.1, 192.168.0.0/16, ::1`); blanks are skipped.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!(
                            "TRUSTED_PROXIES: `{entry}` is neither an IP address nor a CIDR range"
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client of a request from `peer` with these `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        // The hops, nearest last: every header line, in order, split on commas.
        let hops: Vec<&str> = headers
            .get_all(FORWARDED_FOR)
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut nearest_trusted = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(address) if self.trusts(address) => nearest_trusted = address,
                Some(address) => return address,
                // A trusted proxy appends valid addresses only: the chain is
                // broken here, so the last hop a trusted proxy vouched for is
                // as far as it can be followed.
                None => return nearest_trusted,
            }
        }
        nearest_trusted
    }
}

/// One entry of `X-Forwarded-For`: an address, possibly with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`) as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = IpAddr::from_str(hop) {
        return Some(address.to_canonical());
    }
    std::net::SocketAddr::from_str(hop)
        .ok()
        .map(|socket| socket.ip().to_canonical())
}

/// The client address of a request, once resolved.
#[derive(Debug, Clone, Copy)]
struct ClientAddr(Option<IpAddr>);

/// The client address of `request` (see the module comment), resolved with
/// the [`TrustedProxies`] registered as app data (none when absent) and
/// kept in the request, so that every part sees the same one. `None` only
/// when the connection has no peer address (a Unix socket).
pub fn of(request: &HttpRequest) -> Option<IpAddr> {
    if let Some(ClientAddr(address)) = request.extensions().get::<ClientAddr>() {
        return *address;
    }
    let address =
        request.peer_addr().map(
            |peer| match request.app_data::<web::Data<TrustedProxies>>() {
                Some(proxies) => proxies.client(peer.ip(), request.headers()),
                None => peer.ip().to_canonical(),
            },
        );
    request.extensions_mut().insert(ClientAddr(address));
    address
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(forwarded: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in forwarded {
            map.append(
                HeaderName::from_static(FORWARDED_FOR),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let none = TrustedProxies::default();
        let forged = headers(&["203.0.113.9"]);
        assert_eq!(none.client(ip("198.51.100.7"), &forged), ip("198.51.100.7"));
        let some = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(some.client(ip("198.51.100.7"), &forged), ip("198.51.100.7"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.0.2.1").unwrap();
        let peer = ip("10.1.1.1");
        // The client forged the first entry; the edge proxy appended its peer.
        let chain = headers(&["203.0.113.9, 198.51.100.7, 192.0.2.1"]);
        assert_eq!(proxies.client(peer, &chain), ip("198.51.100.7"));
        // The same across several header lines, and with ports.
        let lines = headers(&["203.0.113.9", "198.51.100.7:4711", "192.0.2.1"]);
        assert_eq!(proxies.client(peer, &lines), ip("198.51.100.7"));
        let v6 = headers(&["[2001:db8::7]:4711"]);
        assert_eq!(proxies.client(peer, &v6), ip("2001:db8::7"));
        // No header: the proxy itself.
        assert_eq!(proxies.client(peer, &headers(&[])), peer);
        // Every hop a trusted proxy: the farthest of them.
        assert_eq!(
            proxies.client(peer, &headers(&["10.9.9.9, 192.0.2.1"])),
            ip("10.9.9.9")
        );
        // Garbage where a trusted proxy's entry should be: stop there.
        assert_eq!(
            proxies.client(peer, &headers(&["198.51.100.7, unknown, 192.0.2.1"])),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_ranges() {
        let proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        let mapped = ip("::ffff:127.0.0.1");
        assert_eq!(
            proxies.client(mapped, &headers(&["198.51.100.7"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn the_list_is_parsed_strictly() {
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert_eq!(
            TrustedProxies::parse(" 10.0.0.1 , ,::1, 192.168.1.77/16").unwrap(),
            TrustedProxies(vec![
                "10.0.0.1/32".parse().unwrap(),
                "::1/128".parse().unwrap(),
                "192.168.0.0/16".parse().unwrap(),
            ])
        );
        let error = TrustedProxies::parse("10.0.0.1, proxy.internal").unwrap_err();
        assert!(error.contains("proxy.internal"), "{error}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }
}
