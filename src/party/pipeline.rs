//! One member's voice pipeline, built in one place for every way a voice arrives (our answer
//! to their offer, their answer to ours, a stream of the rtcBridge): the jitter buffer and
//! decoder by the negotiated Opus and the user's jitter preset, the packet feed into them, and
//! the member's entry in the playout.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::feed::{member_feed, PacketSender};
use super::settings::JitterPreset;
use crate::audio::playout::{MemberAudio, MemberInfo};
use crate::voice::member::{MemberConfig, MemberVoice};
use crate::voice::peer::sdp::AudioParams;

/// The playout, as the follower and the voice links drive it.
pub trait PlayoutControl: Send + Sync {
    fn add_member(&self, info: MemberInfo, audio: Box<dyn MemberAudio>);
    fn remove_member(&self, account_id: &str);
    /// The instant the playout clock counts from.
    fn epoch(&self) -> Instant;
}

/// How the playout knows a console member: the user's own console is in no slot, and in the
/// mix only when they chose so.
pub fn member_info(
    me: &str,
    include_own_console: bool,
    account_id: &str,
    online_id: &str,
) -> MemberInfo {
    let own_console = account_id == me;
    MemberInfo {
        account_id: account_id.to_owned(),
        online_id: online_id.to_owned(),
        in_mix: !own_console || include_own_console,
        takes_slot: !own_console,
    }
}

/// Starts a member's jitter buffer and decoder for `params` and puts them in the playout
/// under `info` (replacing the silence or earlier voice there). Returns the feed that takes
/// their packets, or why the decoder could not start.
pub fn start_voice(
    playout: &dyn PlayoutControl,
    jitter: &Arc<Mutex<JitterPreset>>,
    params: &AudioParams,
    info: MemberInfo,
) -> Result<PacketSender, String> {
    let preset = *jitter.lock().unwrap_or_else(|e| e.into_inner());
    let mut config = MemberConfig::new(params.clock_rate, params.opus_pt);
    config.jitter = preset.config(params.clock_rate);
    config.red_pt = params.red_pt;
    let pipeline = MemberVoice::new(config).map_err(|e| e.to_string())?;
    let (feed, stream) = member_feed(pipeline, playout.epoch());
    playout.add_member(info, Box::new(stream));
    Ok(feed)
}
