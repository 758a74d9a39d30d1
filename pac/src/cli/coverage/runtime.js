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
(function (g) {
  // wrap the entry point the caller will use, if it is a plain writable function (a getter,
  // or a let/const binding, is left alone: its answers then carry no counts)
  var plain = function (name) {
    var d = Object.getOwnPropertyDescriptor(g, name);
    return !!d && typeof d.value === 'function' && d.writable === true;
  };
  var name = plain('FindProxyForURLEx') ? 'FindProxyForURLEx' : 'FindProxyForURL';
  if (plain(name)) g[name] = __wp_wrap(g[name]);
})(this);
