//! rtcBridge (PROTOCOL.md section 6): create a bridge, add a peer (the offer comes back), answer,
//! re-offer, look up, delete. Every call carries `X-PSN-RTC-TITLE-ID: METROPOL_AND`; peer calls
//! carry `X-PSN-BRIDGE-TOKEN` (recorded on add-peer; sent on the other peer calls too [I]).

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use url::Url;

use super::client::PsnClient;
use super::error::{PsnError, Result};
use super::http::{HeaderSet, Request};
use super::model::{Bridge, BridgeCreatedAnswer, BridgePeer, PeerAddedAnswer, ReofferAnswer};

pub const BRIDGE_BASE: &str = "/api/rtcBridge/v1/bridges";
pub const RTC_TITLE_ID: &str = "METROPOL_AND";

/// The media request of add-peer and re-offer (PROTOCOL.md section 6 step 3).
pub fn media_types() -> Value {
    json!({"mediaTypes": {
        "application": {"isRequired": true},
        "audio": {"isRequired": true, "opus": [{"bitrate": 40, "channels": 1, "codec": "CELT", "ptime": 40, "samplingRates": [16000]}]}
    }})
}

#[derive(Debug, Clone)]
pub struct BridgeApi {
    client: Arc<PsnClient>,
}

impl BridgeApi {
    pub fn new(client: Arc<PsnClient>) -> Self {
        BridgeApi { client }
    }

    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self
            .client
            .config()
            .endpoints
            .api
            .join(BRIDGE_BASE)
            .map_err(|e| PsnError::Config(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|_| PsnError::Config("API base URL cannot carry a path".into()))?
            .extend(segments);
        Ok(url)
    }

    fn req(&self, endpoint: &'static str, method: Method, url: Url) -> Request {
        Request::new(endpoint, method, url, HeaderSet::Api)
            .header("X-PSN-RTC-TITLE-ID", RTC_TITLE_ID)
    }

    fn peer_req(
        &self,
        endpoint: &'static str,
        method: Method,
        url: Url,
        bridge: &Bridge,
    ) -> Request {
        self.req(endpoint, method, url)
            .secret_header("X-PSN-BRIDGE-TOKEN", bridge.bridge_token.clone())
    }

    /// POSTs the media types a peer offers (adding a peer and asking a re-offer send the same
    /// body) and reads the answer.
    async fn post_media_types<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: Url,
        bridge: &Bridge,
    ) -> Result<T> {
        let req = self.peer_req(endpoint, Method::POST, url, bridge);
        self.client.call(req.json(media_types())).await?.json()
    }

    /// `POST /api/rtcBridge/v1/bridges` `{}`.
    pub async fn create(&self) -> Result<Bridge> {
        let resp = self
            .client
            .call(
                self.req("create bridge", Method::POST, self.url(&[])?)
                    .json(json!({})),
            )
            .await?;
        let r: BridgeCreatedAnswer = resp.json()?;
        Ok(Bridge {
            bridge_id: r.bridge.bridge_id,
            bridge_token: r.bridge.bridge_token,
            hosting_type: r.bridge.hosting_type,
        })
    }

    /// `POST .../bridges/{id}/peers?allow_duid_duplication=false&g=2` -> 201 with the bridge's offer.
    pub async fn add_peer(&self, bridge: &Bridge) -> Result<BridgePeer> {
        let mut url = self.url(&[&bridge.bridge_id, "peers"])?;
        url.query_pairs_mut()
            .append_pair("allow_duid_duplication", "false")
            .append_pair("g", "2");
        let r: PeerAddedAnswer = self.post_media_types("add peer", url, bridge).await?;
        Ok(BridgePeer {
            peer_id: r.peer.peer_id,
            offer_sdp: r.peer.offer.sdp,
        })
    }

    /// `POST .../peers/{peerId}/answer` `{"answer":{"sdp"}}` -> 204.
    pub async fn answer(&self, bridge: &Bridge, peer_id: &str, sdp: &str) -> Result<()> {
        let url = self.url(&[&bridge.bridge_id, "peers", peer_id, "answer"])?;
        self.client
            .call(
                self.peer_req("answer", Method::POST, url, bridge)
                    .json(json!({"answer": {"sdp": sdp}})),
            )
            .await?;
        Ok(())
    }

    /// `POST .../peers/{peerId}/offer` (the add-peer body) -> 200 `{"offer":{"sdp"}}`.
    pub async fn reoffer(&self, bridge: &Bridge, peer_id: &str) -> Result<String> {
        let url = self.url(&[&bridge.bridge_id, "peers", peer_id, "offer"])?;
        let r: ReofferAnswer = self.post_media_types("re-offer", url, bridge).await?;
        Ok(r.offer.sdp)
    }

    /// `GET .../bridges/{id}?fields=peer.peerId`: the bridge as PSN reports it (shape [U], kept raw).
    pub async fn get(&self, bridge: &Bridge) -> Result<Value> {
        let mut url = self.url(&[&bridge.bridge_id])?;
        url.query_pairs_mut().append_pair("fields", "peer.peerId");
        self.client
            .call(self.peer_req("get bridge", Method::GET, url, bridge))
            .await?
            .json()
    }

    /// `DELETE .../peers/{peerId}` -> 202.
    pub async fn delete_peer(&self, bridge: &Bridge, peer_id: &str) -> Result<()> {
        let url = self.url(&[&bridge.bridge_id, "peers", peer_id])?;
        self.client
            .call(self.peer_req("delete peer", Method::DELETE, url, bridge))
            .await?;
        Ok(())
    }

    /// `DELETE .../bridges/{id}` -> 202.
    pub async fn delete(&self, bridge: &Bridge) -> Result<()> {
        let url = self.url(&[&bridge.bridge_id])?;
        self.client
            .call(self.peer_req("delete bridge", Method::DELETE, url, bridge))
            .await?;
        Ok(())
    }
}
