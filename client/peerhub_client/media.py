"""Media helpers: a minimal ``MediaStream`` and turning "a media source" into tracks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeAlias

from aiortc import MediaStreamTrack

__all__ = ["AnswerSource", "MediaSource", "MediaStream", "TrackSource", "local_tracks"]


class MediaStream:
    """A group of tracks, like the browser's ``MediaStream`` (``stream`` events carry one)."""

    def __init__(self, tracks: Iterable[MediaStreamTrack] = (), id: str | None = None) -> None:
        self.id = id or str(uuid.uuid4())
        self.tracks: list[MediaStreamTrack] = list(tracks)

    def get_tracks(self) -> list[MediaStreamTrack]:
        return list(self.tracks)

    def get_audio_tracks(self) -> list[MediaStreamTrack]:
        return [t for t in self.tracks if t.kind == "audio"]

    def get_video_tracks(self) -> list[MediaStreamTrack]:
        return [t for t in self.tracks if t.kind == "video"]

    @property
    def audio(self) -> MediaStreamTrack | None:
        return next(iter(self.get_audio_tracks()), None)

    @property
    def video(self) -> MediaStreamTrack | None:
        return next(iter(self.get_video_tracks()), None)

    def add_track(self, track: MediaStreamTrack) -> None:
        if track not in self.tracks:
            self.tracks.append(track)

    def __repr__(self) -> str:
        kinds = ",".join(t.kind for t in self.tracks)
        return f"MediaStream({self.id!r}, [{kinds}])"


class TrackSource(Protocol):
    """Anything with ``audio``/``video`` track attributes, e.g. aiortc's ``MediaPlayer``."""

    @property
    def audio(self) -> MediaStreamTrack | None: ...

    @property
    def video(self) -> MediaStreamTrack | None: ...


# A media source: a track, tracks, a MediaStream, a TrackSource, or None (receive only).
MediaSource: TypeAlias = (
    MediaStreamTrack | MediaStream | TrackSource | Iterable[MediaStreamTrack] | None
)
# ``answer()`` may instead get a function of the caller's stream (e.g. to echo it back).
AnswerSource: TypeAlias = MediaSource | Callable[[MediaStream], MediaSource]


def local_tracks(source: MediaSource) -> list[MediaStreamTrack]:
    """The tracks to send for ``source`` (see ``MediaSource``)."""
    if source is None:
        return []
    if isinstance(source, MediaStreamTrack):
        return [source]
    if isinstance(source, MediaStream):
        return source.get_tracks()
    if hasattr(source, "audio") or hasattr(source, "video"):
        found = [getattr(source, "audio", None), getattr(source, "video", None)]
        return [t for t in found if isinstance(t, MediaStreamTrack)]
    if isinstance(source, Iterable):
        return _only_tracks(source)
    raise TypeError(f"not a media source: {type(source).__name__}")


def _only_tracks(items: Iterable[Any]) -> list[MediaStreamTrack]:
    tracks = list(items)
    for track in tracks:
        if not isinstance(track, MediaStreamTrack):
            raise TypeError(f"not a media track: {type(track).__name__}")
    return tracks
