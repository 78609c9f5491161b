#!/usr/bin/env bash
# Runs both fuzz targets for SECONDS each (default 30). Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). Seeds the corpus with valid inputs first.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
mkdir -p corpus/custom_message_decode corpus/push_frame_parse
printf '%s' '{"version":"3.0","method":3001,"dataType":"psn:sessionManager:sys:v2:ps:members:created","to":{"accountId":"1"},"body":{"data":{"sessionId":"s","customProperties":{"from":{"accountId":"2"}},"members":[{"accountId":"2","onlineId":"b","platform":"PS5"}]}}}' > corpus/push_frame_parse/members_created.json
for t in custom_message_decode push_frame_parse; do
  cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -max_len=4096 2>&1 | tail -n 3
done
