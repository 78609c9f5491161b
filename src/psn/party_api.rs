//! Party sessions (PROTOCOL.md section 3, sessionManager v2): list my parties, find the party I am
//! in, join as a member, update my member data, leave, roster, party link info.

use std::sync::Arc;

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use url::Url;

use super::client::PsnClient;
use super::error::{PsnError, Result};
use super::http::{HeaderSet, Request};
use super::model::{
    Bridge, PartiesAnswer, Party, PartyInfo, PartySessionsAnswer, RosterMember, MOBILE_APP,
};

pub const SM_BASE: &str = "/api/sessionManager/v2";
/// `customData4` as the app sends it (PROTOCOL.md section 3; field meanings [U]).
pub const DEFAULT_CUSTOM_DATA4: [&str; 10] = ["", "", "1", "0", "6.2.0", "0", "0", "0", "", ""];

/// Party calls on behalf of one signed-in client.
#[derive(Debug, Clone)]
pub struct PartyApi {
    client: Arc<PsnClient>,
    /// The push context this client registers with its member object (one per client) [I].
    push_context_id: String,
}

pub fn encode_custom_data4(fields: &[&str]) -> String {
    base64::engine::general_purpose::STANDARD.encode(json!(fields).to_string())
}

impl PartyApi {
    pub fn new(client: Arc<PsnClient>) -> Self {
        PartyApi {
            client,
            push_context_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn client(&self) -> &Arc<PsnClient> {
        &self.client
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.client
            .config()
            .endpoints
            .api
            .join(path)
            .map_err(|e| PsnError::Config(e.to_string()))
    }

    /// An API request to `.../partySessions/{session_id}/{tail}`.
    pub(crate) fn party_request(
        &self,
        endpoint: &'static str,
        method: Method,
        session_id: &str,
        tail: &str,
    ) -> Result<Request> {
        let mut url = self.url(&format!("{SM_BASE}/partySessions"))?;
        url.path_segments_mut()
            .map_err(|_| PsnError::Config("API base URL cannot carry a path".into()))?
            .push(session_id)
            .extend(tail.split('/').filter(|s| !s.is_empty()));
        Ok(Request::new(endpoint, method, url, HeaderSet::Api))
    }

    /// `POST .../sys/gameBase/parties/bulkGet?limit=11` with `{"groupInvitedPartySessions":[]}`.
    pub async fn list_parties(&self) -> Result<Vec<Party>> {
        let mut url = self.url(&format!("{SM_BASE}/sys/gameBase/parties/bulkGet"))?;
        url.query_pairs_mut().append_pair("limit", "11");
        let req = Request::new("bulkGet", Method::POST, url, HeaderSet::Api)
            .json(json!({"groupInvitedPartySessions": []}));
        Ok(self
            .client
            .call(req)
            .await?
            .json::<PartiesAnswer>()?
            .parties)
    }

    /// `GET .../partySessions?view=v3` with `X-PSN-SESSION-MANAGER-SESSION-IDS` (answer shape [I]:
    /// `{"partySessions":[{sessionId, members[...], ...}]}`).
    pub async fn get_parties_v3(&self, session_ids: &[&str]) -> Result<Vec<Party>> {
        let mut url = self.url(&format!("{SM_BASE}/partySessions"))?;
        url.query_pairs_mut().append_pair("view", "v3");
        let req = Request::new("partySessions v3", Method::GET, url, HeaderSet::Api)
            .header("X-PSN-SESSION-MANAGER-SESSION-IDS", session_ids.join(","));
        let answer: PartySessionsAnswer = self.client.call(req).await?.json()?;
        Ok(answer.party_sessions)
    }

    /// The party that has my account on a console (the one the user is in on their PS5/PS4).
    pub async fn find_my_party(&self) -> Result<Party> {
        let me = self
            .client
            .account_id()
            .await
            .ok_or(PsnError::NotSignedIn)?;
        let parties = self.list_parties().await?;
        parties
            .into_iter()
            .find(|p| p.has_on_console(&me))
            .ok_or(PsnError::NotInParty)
    }

    /// The member object the app sends (PROTOCOL.md section 3).
    pub fn member_object(&self, custom_data4: &[&str]) -> Value {
        json!({
            "accountId": "me",
            "platform": "me",
            "customData4": encode_custom_data4(custom_data4),
            "pushContexts": [{"contextId": self.push_context_id}],
            "voiceChatActivated": true,
        })
    }

    /// `POST .../partySessions/{id}/members` -> 201.
    pub async fn join(&self, session_id: &str) -> Result<()> {
        let req = self
            .party_request("join", Method::POST, session_id, "members")?
            .json(json!({"members": [self.member_object(&DEFAULT_CUSTOM_DATA4)]}));
        self.client.call(req).await?;
        log::info!("PSN: joined the party");
        Ok(())
    }

    /// Joins `party` as our MOBILE_APP member, replacing a membership of ours left behind
    /// (a crash, a killed OBS: PSN keeps it until it is removed, and refuses the same device a
    /// second one [I]): found in the roster, or refused with 409, it is left first.
    pub async fn join_replacing_stale(&self, party: &Party, me: &str) -> Result<()> {
        let stale = party
            .members
            .iter()
            .any(|m| m.account_id == me && m.platform == MOBILE_APP);
        if stale {
            log::info!(
                "PSN: our membership from an earlier run is still in the party; leaving it first"
            );
            self.leave_ignoring_absent(&party.session_id).await?;
        }
        match self.join(&party.session_id).await {
            Err(PsnError::Api { status: 409, .. }) if !stale => {
                log::info!("PSN: the join was refused as a second membership of this device; leaving the old one first");
                self.leave_ignoring_absent(&party.session_id).await?;
                self.join(&party.session_id).await
            }
            other => other,
        }
    }

    /// Leaves; a membership that is already gone (404) is fine.
    async fn leave_ignoring_absent(&self, session_id: &str) -> Result<()> {
        match self.leave(session_id).await {
            Err(PsnError::Api { status: 404, .. }) => Ok(()),
            other => other,
        }
    }

    /// The push context id named in every join: one per `PartyApi`, which the push connection
    /// shares for its whole life ([I]: what PSN ties it to is not recorded).
    pub fn push_context_id(&self) -> &str {
        &self.push_context_id
    }

    /// `PATCH .../members/me` `{"customData4": ...}` -> 204 (only after joining).
    pub async fn update_custom_data4(&self, session_id: &str, fields: &[&str]) -> Result<()> {
        let req = self
            .party_request("update member", Method::PATCH, session_id, "members/me")?
            .json(json!({"customData4": encode_custom_data4(fields)}));
        self.client.call(req).await?;
        Ok(())
    }

    /// `DELETE .../members/me` -> 204.
    pub async fn leave(&self, session_id: &str) -> Result<()> {
        let req = self.party_request("leave", Method::DELETE, session_id, "members/me")?;
        self.client.call(req).await?;
        log::info!("PSN: left the party");
        Ok(())
    }

    /// The roster of one party, from bulkGet.
    pub async fn roster(&self, session_id: &str) -> Result<Option<Vec<RosterMember>>> {
        Ok(self
            .list_parties()
            .await?
            .into_iter()
            .find(|p| p.session_id == session_id)
            .map(|p| p.members))
    }

    /// `POST .../partySessions/{id}/bridges` with `X-PSN-SESSION-MANAGER-IGNORE-CONFLICT: true` -> 201.
    pub async fn link_bridge(&self, session_id: &str, bridge: &Bridge) -> Result<()> {
        let body = json!({"bridges": [{"bridgeId": bridge.bridge_id, "bridgeToken": bridge.bridge_token.expose()}]});
        let req = self
            .party_request("link bridge", Method::POST, session_id, "bridges")?
            .header("X-PSN-SESSION-MANAGER-IGNORE-CONFLICT", "true")
            .json(body);
        self.client.call(req).await?;
        Ok(())
    }

    /// `GET {web}/api/cpss/v1/partyInfo/{linkId}?country=US&language=en` (no auth).
    pub async fn party_info(&self, link_id: &str) -> Result<PartyInfo> {
        let mut url = self
            .client
            .config()
            .endpoints
            .web
            .join("/api/cpss/v1/partyInfo/")
            .map_err(|e| PsnError::Config(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|_| PsnError::Config("web base URL cannot carry a path".into()))?
            .pop_if_empty()
            .push(link_id);
        url.query_pairs_mut()
            .append_pair("country", "US")
            .append_pair("language", "en");
        let req = Request::new("partyInfo", Method::GET, url, HeaderSet::Plain);
        self.client.http().send(req).await?.ok()?.json()
    }
}
