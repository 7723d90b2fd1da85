//! berth-dns: cluster DNS. Serves the `cluster.local` zone from Services, EndpointSlices and Pods
//! (watched through the API) with hickory, and forwards every other name to the host's resolvers.
#![deny(unsafe_code)]
