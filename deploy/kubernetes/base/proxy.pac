// The routing decision, edited like any PAC: cluster names and private networks go DIRECT,
// everything else through the corporate proxy, DIRECT when it is down.
function FindProxyForURL(url, host) {
    if (isPlainHostName(host) ||
        dnsDomainIs(host, ".svc") ||
        dnsDomainIs(host, ".cluster.local") ||
        shExpMatch(host, "10.*") ||
        host == "localhost" || host == "127.0.0.1") {
        return "DIRECT";
    }
    return "PROXY proxy.corp.example:3128; DIRECT";
}
