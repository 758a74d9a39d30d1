var cache = {};
function FindProxyForURL(url, host) {
  var ip = dnsResolve("10.1.2.3");
  alert("ip " + ip + " me " + myIpAddress() + " " + dateRange(1, "JAN", 31, "DEC"));
  cache[host] = (cache[host] || 0) + 1;
  if (isResolvable(host) && convert_addr(ip) > 0) return "PROXY " + ip + ":80";
  return ["SOCKS", host.split(".").reverse().join("."), dnsDomainLevels(host)].join(" ");
}
