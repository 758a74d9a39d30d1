function FindProxyForURL(url, host) {
  if (isPlainHostName(host) || dnsDomainIs(host, ".corp.example") ||
      isInNet(host, "10.0.0.0", "255.0.0.0") || shExpMatch(url, "http://intranet*/*"))
    return "DIRECT";
  if (localHostOrDomainIs(host, "www.example.test") && weekdayRange("MON", "FRI") &&
      timeRange(8, 18))
    return "PROXY day.example.test:3128; DIRECT";
  if (url.substring(0, 6) == "https:") return "HTTPS secure.example.test:443";
  return "PROXY proxy.example.test:8080; SOCKS5 socks.example.test:1080; DIRECT";
}
