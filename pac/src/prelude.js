// waypost PAC prelude: the date and time predicates, written in JS because they are defined
// in terms of the JS Date object (spec §2: bug-compatible Netscape semantics). Everything else
// is a native function registered from Rust. `Date` follows the engine's clock and time zone.
var weekdayRange, dateRange, timeRange;
(function () {
  var DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
  var MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];

  // Splits a trailing "GMT" off an arguments object.
  function split(args) {
    var list = Array.prototype.slice.call(args);
    var gmt = list.length > 0 && list[list.length - 1] == 'GMT';
    if (gmt) list.pop();
    return { list: list, gmt: gmt };
  }

  // A Date whose local fields hold the current UTC wall clock (the Netscape GMT trick).
  function utcAsLocal(now) {
    return new Date(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(),
      now.getUTCHours(), now.getUTCMinutes(), now.getUTCSeconds());
  }

  function within(lo, x, hi) {
    return lo <= hi ? (lo <= x && x <= hi) : (x >= lo || x <= hi);
  }

  weekdayRange = function () {
    var a = split(arguments);
    if (a.list.length < 1) return false;
    var lo = DAYS.indexOf(a.list[0]);
    var hi = a.list.length == 2 ? DAYS.indexOf(a.list[1]) : lo;
    if (lo < 0 || hi < 0) return false;
    var now = new Date();
    return within(lo, a.gmt ? now.getUTCDay() : now.getDay(), hi);
  };

  dateRange = function () {
    var a = split(arguments), n = a.list.length, now = new Date();
    if (n < 1) return false;
    if (n == 1) {
      var v = parseInt(a.list[0], 10);
      if (isNaN(v)) return MONTHS.indexOf(a.list[0]) == (a.gmt ? now.getUTCMonth() : now.getMonth());
      if (v < 32) return v == (a.gmt ? now.getUTCDate() : now.getDate());
      return v == (a.gmt ? now.getUTCFullYear() : now.getFullYear());
    }
    var year = now.getFullYear();
    var from = new Date(year, 0, 1, 0, 0, 0), to = new Date(year, 11, 31, 23, 59, 59);
    var toCurrentMonth = false;
    for (var i = 0; i < n; i++) {
      var d = i < (n >> 1) ? from : to, x = parseInt(a.list[i], 10);
      if (isNaN(x)) d.setMonth(MONTHS.indexOf(a.list[i]));
      else if (x < 32) { toCurrentMonth = n <= 2; d.setDate(x); }
      else d.setFullYear(x);
    }
    if (toCurrentMonth) { from.setMonth(now.getMonth()); to.setMonth(now.getMonth()); }
    if (a.gmt) now = utcAsLocal(now);
    return within(from, now, to);
  };

  timeRange = function () {
    var a = split(arguments), n = a.list.length, now = new Date(), l = a.list;
    if (n < 1) return false;
    var hour = a.gmt ? now.getUTCHours() : now.getHours();
    if (n == 1) return hour == l[0];
    if (n == 2) return l[0] <= hour && hour <= l[1];
    var from = new Date(now.getTime()), to = new Date(now.getTime());
    if (n == 4) { from.setHours(l[0], l[1]); to.setHours(l[2], l[3], 59); }
    else if (n == 6) { from.setHours(l[0], l[1], l[2]); to.setHours(l[3], l[4], l[5]); }
    else throw 'timeRange: bad number of arguments';
    if (a.gmt) now = utcAsLocal(now);
    return within(from, now, to);
  };
})();

// A console object, as V8 (Chromium's PAC engine) and pacparser provide: messages go to the
// same log as alert().
var console = (function () {
  function log() { alert(Array.prototype.join.call(arguments, ' ')); }
  return { log: log, info: log, warn: log, error: log, debug: log };
})();
