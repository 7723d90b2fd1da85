//! berth-proxy: the service proxy of every node. Watches Services and EndpointSlices and programs
//! them into one nftables table owned by Berth, replaced atomically on each sync. Touches the
//! host's nftables and routes; never the store.
#![deny(unsafe_code)]
