#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30). Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). Seeds the corpus with valid inputs first.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
targets=(custom_message_decode push_frame_parse rtp_into_member sdp_offer psn_text_parsers psn_json_answers)
for t in "${targets[@]}"; do mkdir -p "corpus/$t"; done
cp ../tests/voice_fixtures/*.sdp corpus/sdp_offer/ 2>/dev/null || true
printf '%s' '{"error":{"referenceId":"r-1","code":2285581,"message":"Resource not found"}}' > corpus/psn_text_parsers/error.json
printf '%s' '{"version":"3.0","method":3001,"dataType":"psn:sessionManager:sys:v2:ps:members:created","to":{"accountId":"1"},"body":{"data":{"sessionId":"s","customProperties":{"from":{"accountId":"2"}},"members":[{"accountId":"2","onlineId":"b","platform":"PS5"}]}}}' > corpus/push_frame_parse/members_created.json
printf '%s' '{"parties":[{"sessionId":"s","sessionName":"n","members":[{"accountId":"1","onlineId":"a","platform":"PS5"}]}]}' > corpus/psn_json_answers/parties.json
printf '%s' '{"peer":{"peerId":"p","offer":{"sdp":"v=0"}},"bridge":{"bridgeId":"b","bridgeToken":"t"}}' > corpus/psn_json_answers/bridge.json
printf '%s' '{"access_token":"a.b.c","expires_in":3600,"refresh_token":"r","refresh_token_expires_in":5184000}' > corpus/psn_json_answers/token.json
for t in "${targets[@]}"; do
  out=$(cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -max_len=4096 2>&1) || {
    echo "$out" | tail -n 40
    echo "FIGURE fuzz $t: CRASHED (see fuzz/artifacts/$t)"
    exit 1
  }
  done_line=$(echo "$out" | grep -E '^Done [0-9]+ runs' | tail -n 1)
  echo "FIGURE fuzz $t: ${done_line#Done } (libFuzzer), no crash, corpus $(ls "corpus/$t" | wc -l) inputs"
done
