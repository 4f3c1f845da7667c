//! [`SlabDecoder`]: any bytes decoder, its frames copied into slab chunks.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::slab::{Slab, SlabBuf};

/// Wraps any decoder whose frames are bytes (`BytesMut` from
/// `LengthDelimitedCodec` or `BytesCodec`, `String` from `LinesCodec`, your
/// own) and hands out each frame copied into a slab chunk of its size, so
/// the frame no longer pins the connection's read buffer. Encoding goes to
/// the wrapped codec unchanged.
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::codec::SlabDecoder;
/// use futures_util::StreamExt;
/// use tokio_util::codec::{FramedRead, LinesCodec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let slab = Slab::new();
/// let io: &[u8] = b"first\nsecond\n";
/// let mut lines = FramedRead::new(io, SlabDecoder::new(LinesCodec::new(), &slab));
/// assert_eq!(&lines.next().await.unwrap().unwrap()[..], b"first");
/// assert_eq!(&lines.next().await.unwrap().unwrap()[..], b"second");
/// # }
/// ```
#[derive(Debug)]
pub struct SlabDecoder<D> {
    inner: D,
    slab: Slab,
}

impl<D> SlabDecoder<D> {
    /// Wraps `inner`; frames come from `slab`.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::SlabDecoder;
    /// use tokio_util::codec::{BytesCodec, Decoder};
    ///
    /// let mut decoder = SlabDecoder::new(BytesCodec::new(), &Slab::new());
    /// let mut src = BytesMut::from("abc");
    /// let frame = decoder.decode(&mut src).unwrap().unwrap();
    /// assert_eq!(&frame[..], b"abc");
    /// assert!(frame.is_pooled());
    /// ```
    pub fn new(inner: D, slab: &Slab) -> Self {
        SlabDecoder {
            inner,
            slab: slab.clone(),
        }
    }

    /// The wrapped codec.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::SlabDecoder;
    /// use tokio_util::codec::LinesCodec;
    ///
    /// let decoder = SlabDecoder::new(LinesCodec::new_with_max_length(80), &Slab::new());
    /// assert_eq!(decoder.get_ref().max_length(), 80);
    /// ```
    pub fn get_ref(&self) -> &D {
        &self.inner
    }

    /// The wrapped codec, mutably.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::SlabDecoder;
    /// use tokio_util::codec::LengthDelimitedCodec;
    ///
    /// let mut decoder = SlabDecoder::new(LengthDelimitedCodec::new(), &Slab::new());
    /// decoder.get_mut().set_max_frame_length(16);
    /// assert_eq!(decoder.get_ref().max_frame_length(), 16);
    /// ```
    pub fn get_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Unwraps the codec.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::SlabDecoder;
    /// use tokio_util::codec::LinesCodec;
    ///
    /// let decoder = SlabDecoder::new(LinesCodec::new_with_max_length(80), &Slab::new());
    /// let lines: LinesCodec = decoder.into_inner();
    /// assert_eq!(lines.max_length(), 80);
    /// ```
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// The slab frames come from.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::SlabDecoder;
    /// use tokio_util::codec::{Decoder, LinesCodec};
    ///
    /// let mut decoder = SlabDecoder::new(LinesCodec::new(), &Slab::new());
    /// let mut src = BytesMut::from("hello\n");
    /// let line = decoder.decode(&mut src).unwrap().unwrap();
    /// assert_eq!(&line[..], b"hello");
    /// assert_eq!(decoder.slab().stats().num_in_use(), 1);
    /// ```
    pub fn slab(&self) -> &Slab {
        &self.slab
    }
}

impl<D> Decoder for SlabDecoder<D>
where
    D: Decoder,
    D::Item: AsRef<[u8]>,
{
    type Item = SlabBuf;
    type Error = D::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<SlabBuf>, D::Error> {
        Ok(self
            .inner
            .decode(src)?
            .map(|frame| self.slab.copy_from_slice(frame.as_ref())))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<SlabBuf>, D::Error> {
        Ok(self
            .inner
            .decode_eof(src)?
            .map(|frame| self.slab.copy_from_slice(frame.as_ref())))
    }
}

impl<D: Encoder<I>, I> Encoder<I> for SlabDecoder<D> {
    type Error = D::Error;

    fn encode(&mut self, item: I, dst: &mut BytesMut) -> Result<(), D::Error> {
        self.inner.encode(item, dst)
    }
}
