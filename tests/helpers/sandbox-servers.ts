/**
 * Echo servers for e2e tests, built only from what the busybox test image has (sh, httpd, nc, dd,
 * od, sha1sum, xxd, base64). Give a sandbox `entrypoint: echoServersEntrypoint()` and it serves:
 *
 *  - HTTP on HTTP_PORT (busybox httpd). `/cgi-bin/echo` (ECHO_PATH) answers any method with
 *    headers X-Echo-Method / X-Echo-Query / X-Echo-Length and the body
 *    "method=M\nquery=Q\nlength=N\n\n" followed by the request body verbatim (see parseEcho).
 *    Limits (busybox httpd 1.35): a body reaches the CGI only for POST with a Content-Length
 *    (checked intact with 100 KB of random bytes); a chunked body (no Content-Length, e.g. fetch
 *    with a ReadableStream) is dropped: the answer says length=0 and an empty body. Other methods
 *    (PUT, DELETE, ...) reach the CGI but without their body. Responses carry no Content-Length;
 *    the connection closes at the end (no keep-alive).
 *  - A WebSocket (RFC 6455) echo server on WS_PORT (`nc -ll -e` running a busybox sh script per
 *    connection, so any number of connections, one after another or at once). Each text or binary
 *    message comes back unchanged with the same opcode (so text stays text); ping gets a pong;
 *    a close is answered with a close carrying the same code and reason, then the server hangs up.
 *    Any byte value is fine (NUL, %, \, UTF-8). All payload lengths (7-bit, 16-bit and 64-bit
 *    forms) work, but each byte costs shell work. Measured round trips under the e2e limit of
 *    250m CPU: ~5-15 ms for a short message (occasionally ~80 ms when CFS throttles), ~40 ms for
 *    1 KiB, ~0.2 s for 2 KB, ~0.4 s for 10 KB, ~4 s for 64 KiB; about 4x faster unthrottled. Keep
 *    test messages to a few KB. No extensions are negotiated (permessage-deflate offers are
 *    ignored, which clients accept); fragmented messages are echoed frame by frame; the request
 *    path is ignored; no subprotocol is ever selected (a client that asks for one, e.g.
 *    new WebSocket(url, ['chat']), fails the handshake); a request without Sec-WebSocket-Key
 *    gets 400.
 *
 * Both scripts are written under /tmp at start-up and executed from there, so /tmp must be writable
 * and not noexec: true on the image's read-write root filesystem (checked with the sandbox
 * defaults and with --cap-drop ALL), but not with --read-only plus a Docker --tmpfs /tmp (noexec
 * by default: httpd then answers 404 and the WebSocket port hangs up).
 */

export const HTTP_PORT = 8080;
export const WS_PORT = 8081;
/** The echo CGI's URL path on HTTP_PORT. */
export const ECHO_PATH = '/cgi-bin/echo';

// The scripts are String.raw templates: they must never contain "${" or a backtick.

/** CGI for busybox httpd: echoes the method, the raw query string and the (POST) body (and, on request, headers). */
export const ECHO_CGI_SCRIPT = String.raw`#!/bin/sh
n=0
[ -n "$CONTENT_LENGTH" ] && n=$CONTENT_LENGTH
printf 'Content-Type: text/plain\r\n'
printf 'X-Echo-Method: %s\r\nX-Echo-Query: %s\r\nX-Echo-Length: %s\r\n\r\n' "$REQUEST_METHOD" "$QUERY_STRING" "$n"
printf 'method=%s\nquery=%s\nlength=%s\n\n' "$REQUEST_METHOD" "$QUERY_STRING" "$n"
# ?headers=1: also list the request headers httpd passed as HTTP_* variables, sorted.
case "$QUERY_STRING" in *headers=1*) env | grep '^HTTP_' | sort ;; esac
[ "$n" -gt 0 ] && exec head -c "$n"
exit 0
`;

/** WebSocket echo for one connection on stdin/stdout, as run by nc -ll -p PORT -e. */
export const WS_ECHO_SCRIPT = String.raw`#!/bin/sh
cr=$(printf '\r')
key=
# Handshake: the request headers, one byte at a time (ash's read never reads past a line).
while IFS=": $cr" read -r name value rest; do
  [ -z "$name" ] && break
  case $name in [Ss][Ee][Cc]-[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]-[Kk][Ee][Yy]) key=$value ;; esac
done
if [ -z "$key" ]; then
  printf 'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
  exit 0
fi
accept=$(printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' "$key" | sha1sum | cut -d' ' -f1 | xxd -r -p | base64)
printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n' "$accept"

# N bytes from the socket as decimal numbers (dd bs=1 never reads past them).
rd() { dd bs=1 count="$1" 2>/dev/null | od -An -tu1 -v; }
# Append byte $1 to $o as a printf octal escape (so NUL, % and \ are safe).
oc() { o="$o\\$(( ($1 >> 6) & 7 ))$(( ($1 >> 3) & 7 ))$(( $1 & 7 ))"; }
# Start $o with an unmasked frame header: first byte $1, payload length $2.
hdr() {
  o=; oc "$1"
  if [ "$2" -lt 126 ]; then oc "$2"
  elif [ "$2" -lt 65536 ]; then oc 126; oc $(( $2 >> 8 )); oc $(( $2 & 255 ))
  else oc 127; for s in 56 48 40 32 24 16 8 0; do oc $(( ($2 >> s) & 255 )); done
  fi
}

while :; do
  set -- $(rd 2)
  [ $# -eq 2 ] || exit 0
  b0=$1; op=$(( $1 & 15 )); masked=$(( $2 & 128 )); len=$(( $2 & 127 ))
  if [ "$len" -eq 126 ]; then
    set -- $(rd 2); [ $# -eq 2 ] || exit 0; len=$(( ($1 << 8) | $2 ))
  elif [ "$len" -eq 127 ]; then
    set -- $(rd 8); [ $# -eq 8 ] || exit 0; len=0; for b; do len=$(( (len << 8) | b )); done
  fi
  m0=0; m1=0; m2=0; m3=0
  if [ "$masked" -ne 0 ]; then set -- $(rd 4); [ $# -eq 4 ] || exit 0; m0=$1; m1=$2; m2=$3; m3=$4; fi
  case $op in
    0|1|2) reply=$(( b0 & 143 )) ;;   # data: echo with the same FIN bit and opcode
    8) reply=136 ;;                   # close: echo the close (code and reason), then hang up
    9) reply=138 ;;                   # ping: pong with the same payload
    10) reply= ;;                     # pong: ignore
    *) hdr 136 2; oc 3; oc 234; printf "$o"; exit 0 ;;   # unknown opcode: close 1002
  esac
  o=; [ -n "$reply" ] && hdr "$reply" "$len"
  i=0
  if [ "$len" -gt 0 ]; then
    for b in $(rd "$len"); do
      case $(( i & 3 )) in 0) k=$m0 ;; 1) k=$m1 ;; 2) k=$m2 ;; *) k=$m3 ;; esac
      oc $(( b ^ k )); i=$(( i + 1 ))
      # Flush every 1 KiB so long payloads stay linear in time; the header goes out with the
      # first chunk (one write per small frame, so no Nagle/delayed-ACK stall).
      if [ $(( i & 1023 )) -eq 0 ]; then [ -n "$reply" ] && printf "$o"; o=; fi
    done
  fi
  [ -n "$reply" ] && printf "$o"
  [ "$i" -eq "$len" ] || exit 0
  [ "$op" -eq 8 ] && exit 0
done
`;

export interface EchoServersOptions {
  httpPort?: number;
  wsPort?: number;
}

/** A sandbox entrypoint that writes both scripts under /tmp, starts the WebSocket server, then execs httpd. */
export function echoServersEntrypoint(options: EchoServersOptions = {}): string[] {
  const httpPort = options.httpPort ?? HTTP_PORT;
  const wsPort = options.wsPort ?? WS_PORT;
  const script = [
    'set -e',
    'mkdir -p /tmp/www/cgi-bin',
    "cat > /tmp/www/cgi-bin/echo <<'TIDEBOX_ECHO_CGI'",
    ECHO_CGI_SCRIPT + 'TIDEBOX_ECHO_CGI',
    "cat > /tmp/ws.sh <<'TIDEBOX_WS_ECHO'",
    WS_ECHO_SCRIPT + 'TIDEBOX_WS_ECHO',
    'chmod 755 /tmp/www/cgi-bin/echo /tmp/ws.sh',
    `nc -ll -p ${wsPort} -e /tmp/ws.sh &`,
    `exec httpd -f -p ${httpPort} -h /tmp/www`,
  ].join('\n');
  return ['sh', '-c', script];
}

export interface EchoReply {
  method: string;
  query: string;
  /** CONTENT_LENGTH as the CGI saw it (0 when the body did not reach it). */
  length: number;
  body: Buffer;
}

/** Parse the body of an ECHO_PATH response (pass the raw bytes to compare binary bodies exactly). */
export function parseEcho(response: Buffer | string): EchoReply {
  const buf = typeof response === 'string' ? Buffer.from(response) : response;
  const sep = buf.indexOf('\n\n');
  if (sep < 0) throw new Error(`not an echo response: ${JSON.stringify(buf.subarray(0, 200).toString())}`);
  const fields = new Map<string, string>();
  for (const line of buf.subarray(0, sep).toString().split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return {
    method: fields.get('method') ?? '',
    query: fields.get('query') ?? '',
    length: Number(fields.get('length') ?? 0),
    body: buf.subarray(sep + 2),
  };
}
