function FindProxyForURL(url, host) { throw new Error("no " + host); }
