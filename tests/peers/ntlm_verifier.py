#!/usr/bin/env python3
"""Squid NTLM authentication helper that verifies NTLMv2 for real (tests only).

Squid's stateful NTLM helper protocol on stdin/stdout:
    YR <b64 NEGOTIATE>     -> TT <b64 CHALLENGE>
    KK <b64 AUTHENTICATE>  -> AF <user>  |  NA <reason>
The AUTHENTICATE message is checked by pyspnego's NTLM acceptor against a user file
(``DOMAIN:USER:PASSWORD`` lines, pyspnego's NTLM_USER_FILE format): it recomputes the
NTLMv2 NTProofStr from the password and, when MsvAvFlags announce one, the MIC.

    --min-level v2   refuse NTLMv1 and LM responses (default; v1 allows them)
    --require-mic    refuse AUTHENTICATE messages without a MIC (curl sends none)
    --log FILE       one JSON line per message: user, domain, workstation, NTLM version,
                     MIC present, AV pairs, target SPN, channel bindings, flags, verdict

It also works behind negotiate_wrapper_auth (raw NTLMSSP inside ``Negotiate``), which
speaks the same legacy TT/AF/NA replies.
"""
import argparse
import base64
import datetime
import json
import os
import struct
import sys

AV_IDS = {1: "NbComputerName", 2: "NbDomainName", 3: "DnsComputerName",
          4: "DnsDomainName", 5: "DnsTreeName", 6: "Flags", 7: "Timestamp",
          8: "SingleHost", 9: "TargetName", 10: "ChannelBindings"}
FLAG_UNICODE = 0x1
FLAG_ESS = 0x00080000
AVFLAG_MIC = 0x2


def security_buffer(msg, at):
    """(bytes, offset) of the NTLM security buffer whose header starts at `at`."""
    length, _max, offset = struct.unpack_from("<HHI", msg, at)
    return msg[offset:offset + length], offset


def av_pairs(nt_response):
    """AV pairs of an NTLMv2 response: after NTProofStr (16) and the blob header (28)."""
    pairs, i = {}, 44
    while i + 4 <= len(nt_response):
        av_id, av_len = struct.unpack_from("<HH", nt_response, i)
        if av_id == 0:
            break
        pairs[av_id] = nt_response[i + 4:i + 4 + av_len]
        i += 4 + av_len
    return pairs


def describe_authenticate(msg):
    flags = struct.unpack_from("<I", msg, 60)[0]
    enc = "utf-16-le" if flags & FLAG_UNICODE else "latin-1"
    fields = {name: security_buffer(msg, at) for name, at in
              (("lm", 12), ("nt", 20), ("domain", 28), ("user", 36), ("workstation", 44), ("key", 52))}
    nt = fields["nt"][0]
    info = {
        "flags": "0x%08x" % flags,
        "ess": bool(flags & FLAG_ESS),
        "user": fields["user"][0].decode(enc, "replace"),
        "domain": fields["domain"][0].decode(enc, "replace"),
        "workstation": fields["workstation"][0].decode(enc, "replace"),
        "lm_len": len(fields["lm"][0]),
        "nt_len": len(nt),
        "ntlm_version": "v2" if len(nt) > 24 else ("v1" if len(nt) == 24 else "anonymous"),
        "mic_present": False,
        "mic_announced": False,
    }
    if len(nt) > 24:
        pairs = av_pairs(nt)
        info["av_ids"] = [AV_IDS.get(k, str(k)) for k in pairs]
        if len(pairs.get(6, b"")) == 4:
            av_flags = struct.unpack("<I", pairs[6])[0]
            info["avflags"] = "0x%08x" % av_flags
            info["mic_announced"] = bool(av_flags & AVFLAG_MIC)
        if 9 in pairs:
            info["target_name"] = pairs[9].decode("utf-16-le", "replace")
        if 10 in pairs:
            info["channel_bindings"] = pairs[10].hex()
    # header (64) + version (8) + MIC (16): the MIC exists when the payload starts at >= 88
    payload_start = min([off for data, off in fields.values() if data] or [len(msg)])
    if payload_start >= 88:
        info["mic_present"] = msg[72:88] != bytes(16)
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--user-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--min-level", choices=["v1", "v2"], default="v2")
    ap.add_argument("--require-mic", action="store_true")
    args = ap.parse_args()

    os.environ["NTLM_USER_FILE"] = args.user_file
    # pyspnego acceptor: LM_COMPAT_LEVEL 5 accepts NTLMv2 only; 3 also v1 and LM
    os.environ["LM_COMPAT_LEVEL"] = "5" if args.min_level == "v2" else "3"
    import spnego  # after the environment is set

    log_file = open(args.log, "a", buffering=1) if args.log else None

    def log(**fields):
        if log_file:
            fields["ts"] = datetime.datetime.now().isoformat(timespec="milliseconds")
            fields["pid"] = os.getpid()
            log_file.write(json.dumps(fields, sort_keys=True) + "\n")

    def reply(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    acceptor = None
    for line in sys.stdin:
        cmd, _, blob = line.strip().partition(" ")
        if not cmd:
            continue
        try:
            token = base64.b64decode(blob, validate=True) if blob else b""
        except ValueError:
            reply("BH bad base64")
            continue
        if cmd == "YR":
            try:
                acceptor = spnego.server(protocol="ntlm")
                challenge = acceptor.step(token)
            except Exception as e:  # a malformed NEGOTIATE must not kill the helper
                acceptor = None
                log(event="negotiate", verdict="error", reason=str(e))
                reply("NA " + str(e).replace("\n", " ")[:200])
                continue
            flags = struct.unpack_from("<I", token, 12)[0] if len(token) >= 16 else 0
            log(event="negotiate", flags="0x%08x" % flags)
            reply("TT " + base64.b64encode(challenge).decode())
        elif cmd == "KK":
            if acceptor is None:
                reply("BH KK without a preceding YR")
                continue
            try:
                info = describe_authenticate(token)
            except Exception as e:
                info = {"parse_error": str(e)}
            verdict, reason = "ok", ""
            try:
                acceptor.step(token)
                if not acceptor.complete:
                    verdict, reason = "fail", "context not complete"
            except Exception as e:
                verdict, reason = "fail", str(e).replace("\n", " ")
            if verdict == "ok" and args.require_mic and not info.get("mic_present"):
                verdict, reason = "fail", "MIC required but absent"
            log(event="authenticate", verdict=verdict, reason=reason, **info)
            acceptor = None
            if verdict == "ok":
                user, domain = info.get("user", ""), info.get("domain", "")
                # squid escapes backslashes in helper replies: report user@DOMAIN
                reply("AF " + ("%s@%s" % (user, domain) if domain else user).replace(" ", "%20"))
            else:
                reply("NA " + reason[:200])
        else:
            reply("BH unknown request " + cmd)


if __name__ == "__main__":
    main()
