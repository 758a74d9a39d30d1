;var __wp_hits;
function __wp_r(i) { var h = __wp_hits || (__wp_hits = {}); h[i] = (h[i] | 0) + 1; }
function __wp_b(i, v) { __wp_r(v ? i : i + 1); return v; }
function __wp_wrap(f) {
  return function () {
    var r = f.apply(this, arguments);
    if (typeof r !== 'string') return r;
    var h = __wp_hits || {}, out = [];
    __wp_hits = {};
    for (var k in h) out.push(k + ':' + h[k]);
    return r + '\u0000wp-cov ' + out.join(',');
  };
}
try {
  if (typeof FindProxyForURLEx === 'function') FindProxyForURLEx = __wp_wrap(FindProxyForURLEx);
  else if (typeof FindProxyForURL === 'function') FindProxyForURL = __wp_wrap(FindProxyForURL);
} catch (e) {}
