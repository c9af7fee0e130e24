//! The backend side of the xenbus handshake: [`BackConnector`].

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use xenpv_evtchn::{EventChannels, InterdomainPort, Port};
use xenpv_grant::{ForeignGrants, MappedPages};
use xenpv_platform::Platform;
use xenpv_sys::io::xenbus::XenbusState;
use xenpv_xenstore::transport::Transport;
use xenpv_xenstore::xenbus::{BackStatus, Backend, XenbusError, read_unsigned, write_state};
use xenpv_xenstore::{Client, Store};

use crate::back::BlkBack;
use crate::error::BackError;
use crate::image::Image;

/// The native ABI name a frontend may put in `protocol`.
#[cfg(target_arch = "x86_64")]
const PROTOCOL_NATIVE: &str = "x86_64-abi";
#[cfg(target_arch = "x86")]
const PROTOCOL_NATIVE: &str = "x86_32-abi";
#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
const PROTOCOL_NATIVE: &str = "arm-abi";

/// Backend limits advertised to the frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackConfig {
    /// `max-ring-page-order` (0..=4).
    pub max_ring_page_order: u32,
    /// `feature-max-indirect-segments` (0: no indirect requests).
    pub max_indirect_segments: u32,
    /// Offer `feature-persistent` (grant copy serves both kinds alike).
    pub persistent: bool,
    /// `multi-queue-max-queues` (1: single queue, key not written).
    pub max_queues: u32,
}

impl BackConfig {
    /// Rings of up to 16 pages, 256 indirect segments, persistent grants,
    /// up to 4 queues.
    pub const DEFAULT: Self = Self {
        max_ring_page_order: 4,
        max_indirect_segments: 256,
        persistent: true,
        max_queues: 4,
    };
}

impl Default for BackConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Runs the backend's side of the handshake for one `vbd` and builds the
/// [`BlkBack`] once the frontend published its keys.
///
/// At `InitWait` it publishes `sectors`, `info`, `sector-size`,
/// `physical-sector-size`, `feature-flush-cache`, `feature-discard` (with
/// `discard-granularity`, `discard-alignment`, `discard-secure`) when the
/// image discards, `feature-max-indirect-segments`, `max-ring-page-order`,
/// `feature-persistent` and (with more than one queue allowed)
/// `multi-queue-max-queues`. It then reads `protocol` (only the native
/// ABI is served), `ring-page-order`, `multi-queue-num-queues` and, per
/// queue (`queue-N/` or the device directory), `ring-ref`/`ring-refN` and
/// `event-channel`; maps the ring pages, binds the channels and goes
/// `Connected`.
pub struct BackConnector<I: Image> {
    be: Backend,
    dir: String,
    config: BackConfig,
    image: Option<I>,
    features: Vec<(String, String)>,
}

impl<I: Image> core::fmt::Debug for BackConnector<I> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BackConnector")
            .field("dir", &self.dir)
            .field("be", &self.be)
            .finish_non_exhaustive()
    }
}

fn feature_keys<I: Image>(image: &I, config: &BackConfig) -> Vec<(String, String)> {
    let b = |v: bool| if v { "1" } else { "0" }.to_string();
    let mut k = Vec::new();
    let info = if image.readonly() { 4 } else { 0 };
    k.push(("sectors".to_string(), image.sectors().to_string()));
    k.push(("info".to_string(), info.to_string()));
    k.push(("sector-size".to_string(), "512".to_string()));
    k.push(("physical-sector-size".to_string(), "512".to_string()));
    k.push(("feature-flush-cache".to_string(), "1".to_string()));
    if image.supports_discard() {
        k.push(("feature-discard".to_string(), "1".to_string()));
        k.push(("discard-granularity".to_string(), "512".to_string()));
        k.push(("discard-alignment".to_string(), "0".to_string()));
        k.push(("discard-secure".to_string(), "1".to_string()));
    }
    k.push((
        "feature-max-indirect-segments".to_string(),
        config.max_indirect_segments.to_string(),
    ));
    k.push((
        "max-ring-page-order".to_string(),
        config.max_ring_page_order.min(4).to_string(),
    ));
    k.push(("feature-persistent".to_string(), b(config.persistent)));
    if config.max_queues > 1 {
        k.push((
            "multi-queue-max-queues".to_string(),
            config.max_queues.to_string(),
        ));
    }
    k
}

impl<I: Image> BackConnector<I> {
    /// Serves `image` on the absolute backend directory `dir`
    /// (`/local/domain/<be>/backend/vbd/<fe>/<n>`).
    pub fn new(dir: &str, token: &str, image: I, config: BackConfig) -> Self {
        let features = feature_keys(&image, &config);
        Self {
            be: Backend::new(dir, token),
            dir: dir.to_string(),
            config,
            image: Some(image),
            features,
        }
    }

    /// Gives the image back (when giving up).
    pub fn into_image(self) -> Option<I> {
        self.image
    }

    /// Advances the handshake; `Ok(Some(backend))` once connected.
    pub fn poll<X: Transport, P: Platform + Clone, const N: usize>(
        &mut self,
        xs: &mut Client<X>,
        events: &mut EventChannels<P, N>,
    ) -> Result<Option<BlkBack<P, I>>, BackError> {
        let features: Vec<(&str, &str)> = self
            .features
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match self.be.poll(xs, &features, &[])? {
            BackStatus::FrontendReady(_) => {
                let r = self.attach(xs, events);
                if r.is_err() {
                    let _ = self.be.close(xs);
                }
                r.map(Some)
            }
            _ => Ok(None),
        }
    }

    fn attach<X: Transport, P: Platform + Clone, const N: usize>(
        &mut self,
        xs: &mut Client<X>,
        events: &mut EventChannels<P, N>,
    ) -> Result<BlkBack<P, I>, BackError> {
        let link = self
            .be
            .frontend()
            .cloned()
            .ok_or(BackError::Xenbus(XenbusError::PeerVanished))?;
        let fdir = link.path.clone();
        match xs.read(&format!("{fdir}/protocol")) {
            Ok(p) if p != PROTOCOL_NATIVE.as_bytes() => {
                return Err(BackError::Protocol(
                    String::from_utf8_lossy(&p).into_owned(),
                ));
            }
            _ => {}
        }
        let max_queues = u64::from(self.config.max_queues.max(1));
        let queues = read_unsigned(
            xs,
            &format!("{fdir}/multi-queue-num-queues"),
            1..=max_queues,
        )?;
        let max_order = u64::from(self.config.max_ring_page_order.min(4));
        let order = read_unsigned(xs, &format!("{fdir}/ring-page-order"), 0..=max_order)?;
        let platform = events.platform().clone();
        let foreign = ForeignGrants::new(platform.clone());
        let mut rings = Vec::new();
        let dirs: Vec<String> = match queues {
            None => alloc::vec![fdir.clone()],
            Some(n) => (0..n).map(|q| format!("{fdir}/queue-{q}")).collect(),
        };
        let mut result = Ok(());
        for dir in &dirs {
            match self.map_queue(xs, events, &foreign, link.domid, dir, order) {
                Ok(r) => rings.push(r),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let image = match (result, self.image.take()) {
            (Ok(()), Some(image)) => image,
            (r, image) => {
                self.image = image;
                for (ring, port) in rings {
                    drop(ring);
                    let _ = events.close(port);
                }
                return Err(r.err().unwrap_or(BackError::Broken));
            }
        };
        let mut rings = rings.into_iter();
        let Some((ring, port)) = rings.next() else {
            self.image = Some(image);
            return Err(BackError::Broken);
        };
        let mut back = BlkBack::new(
            platform,
            link.domid,
            ring,
            port,
            image,
            self.config.max_indirect_segments,
        )
        .map_err(|refused| {
            let (e, ring, port, image) = *refused;
            drop(ring);
            let _ = events.close(port);
            self.image = Some(image);
            e
        })?;
        for (ring, port) in rings {
            if let Err(refused) = back.add_queue(ring, port) {
                let (e, ring, port) = *refused;
                drop(ring);
                let _ = events.close(port);
                return Err(e);
            }
        }
        self.be.connect(xs)?;
        Ok(back)
    }

    /// Maps one queue's ring (`<dir>/ring-ref` or `ring-ref0..N`) and binds
    /// its `<dir>/event-channel`.
    fn map_queue<X: Transport, P: Platform + Clone, const N: usize>(
        &self,
        xs: &mut Client<X>,
        events: &mut EventChannels<P, N>,
        foreign: &ForeignGrants<P>,
        domid: xenpv_sys::xen::DomId,
        dir: &str,
        order: Option<u64>,
    ) -> Result<(MappedPages<P>, InterdomainPort), BackError> {
        let key = format!("{dir}/event-channel");
        let port = read_unsigned(xs, &key, 1..=u64::from(u32::MAX))?
            .and_then(|p| Port::new(p as u32))
            .ok_or(BackError::Xenbus(XenbusError::MissingKey(key)))?;
        let mut refs = Vec::new();
        match order {
            None => refs.push(ring_ref(xs, &format!("{dir}/ring-ref"))?),
            Some(o) => {
                for i in 0..(1u32 << o) {
                    refs.push(ring_ref(xs, &format!("{dir}/ring-ref{i}"))?);
                }
            }
        }
        let ring = foreign
            .map_pages(domid, &refs, false)
            .map_err(BackError::Grant)?;
        match events.bind_interdomain(domid, port) {
            Ok(p) => Ok((ring, p)),
            Err(e) => {
                drop(ring);
                Err(e.into())
            }
        }
    }

    /// After the connection: checks the frontend is still there
    /// (`PeerClosed` when it or the toolstack closes the device: tear down).
    pub fn check<X: Transport>(&mut self, xs: &mut Client<X>) -> Result<(), BackError> {
        self.be.poll(xs, &[], &[])?;
        Ok(())
    }

    /// Announces a new size (after resizing the image): writes `sectors`,
    /// then `Connected` again so the frontend's watch fires.
    pub fn announce_resize<X: Transport>(
        &mut self,
        xs: &mut Client<X>,
        sectors: u64,
    ) -> Result<(), BackError> {
        xs.write(
            &format!("{}/sectors", self.dir),
            sectors.to_string().as_bytes(),
        )
        .map_err(|e| BackError::Xenbus(XenbusError::Store(e)))?;
        write_state(xs, &self.dir, XenbusState::Connected)?;
        Ok(())
    }

    /// Closes the device (`Closing`, `Closed`).
    pub fn close<X: Transport>(&mut self, xs: &mut Client<X>) -> Result<(), BackError> {
        self.be.close(xs)?;
        Ok(())
    }
}

fn ring_ref<S: Store>(xs: &mut S, key: &str) -> Result<u32, BackError> {
    read_unsigned(xs, key, 0..=u64::from(u32::MAX))?
        .map(|v| v as u32)
        .ok_or_else(|| BackError::Xenbus(XenbusError::MissingKey(key.to_string())))
}
