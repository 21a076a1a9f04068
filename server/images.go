package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/magma-go/magma/tom"
	"github.com/magma-go/magma/vision"
)

// decodeImageURL decodes an image_url value: a data: URI with base64 PNG,
// JPEG or WebP bytes, or (only with AllowRemoteImages) an http(s) URL. No
// other scheme is accepted; nothing from a request is ever opened as a file.
func (s *Server) decodeImageURL(ctx context.Context, raw, param string) (vision.Image, error) {
	if strings.HasPrefix(raw, "data:") {
		data, err := decodeDataURI(raw)
		if err != nil {
			return vision.Image{}, badRequest(param, "invalid_image", "%v", err)
		}
		return s.decodeImageBytes(data, param)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return vision.Image{}, badRequest(param, "invalid_image_url",
			"image_url must be a data: URI with base64 image bytes (or an http(s) URL when the server allows remote images)")
	}
	if !s.cfg.AllowRemoteImages {
		return vision.Image{}, badRequest(param, "remote_images_disabled",
			"remote image URLs are disabled on this server (start it with --allow-remote-images); send a data: URI")
	}
	data, err := s.fetchImage(ctx, u.String())
	if err != nil {
		return vision.Image{}, badRequest(param, "invalid_image_url", "fetching the image: %v", err)
	}
	return s.decodeImageBytes(data, param)
}

// decodeImageString is decodeImageURL that also accepts bare base64 bytes
// (the /v1/ground "image" field).
func (s *Server) decodeImageString(ctx context.Context, raw, param string) (vision.Image, error) {
	if strings.HasPrefix(raw, "data:") || strings.HasPrefix(raw, "http://") || strings.HasPrefix(raw, "https://") {
		return s.decodeImageURL(ctx, raw, param)
	}
	data, err := decodeBase64(raw)
	if err != nil {
		return vision.Image{}, badRequest(param, "invalid_image", "image must be a data: URI or base64 image bytes: %v", err)
	}
	return s.decodeImageBytes(data, param)
}

func (s *Server) decodeImageBytes(data []byte, param string) (vision.Image, error) {
	img, err := vision.DecodeImageBytes(data, vision.WithMaxPixels(s.cfg.MaxImagePixels))
	if err != nil {
		return vision.Image{}, badRequest(param, "invalid_image", "%s", strings.TrimPrefix(err.Error(), "vision: "))
	}
	return img, nil
}

// DefaultVideoFrames is the number of frames sampled from a video_url part
// that does not say.
const DefaultVideoFrames = 8

// decodeVideoURL samples n frames uniformly from a data:video/...;base64
// clip. OpenCV reads videos from files only, so the bytes go to a private
// temporary file, removed at once; each frame is held to MaxImagePixels.
func (s *Server) decodeVideoURL(raw string, n int, param string) ([]vision.Image, error) {
	if !strings.HasPrefix(raw, "data:") {
		return nil, badRequest(param, "invalid_video_url", "video_url must be a data: URI with base64 video bytes (data:video/mp4;base64,...)")
	}
	meta, payload, ok := strings.Cut(strings.TrimPrefix(raw, "data:"), ",")
	parts := strings.Split(meta, ";")
	if mime := strings.ToLower(strings.TrimSpace(parts[0])); !ok || (mime != "" && !strings.HasPrefix(mime, "video/")) || parts[len(parts)-1] != "base64" {
		return nil, badRequest(param, "invalid_video_url", "video_url must be data:video/<type>;base64,<bytes>")
	}
	data, err := decodeBase64(payload)
	if err != nil || len(data) == 0 {
		return nil, badRequest(param, "invalid_video", "video bytes: %v", err)
	}
	f, err := os.CreateTemp("", "magma-video-*")
	if err != nil {
		return nil, fmt.Errorf("video: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("video: %w", werr)
	}
	frames, err := tom.SampleFrames(f.Name(), n)
	if err != nil {
		return nil, badRequest(param, "invalid_video", "the video could not be decoded: %s", strings.ReplaceAll(err.Error(), f.Name(), "<video>"))
	}
	for i, fr := range frames {
		if px, ok := vision.PixelCount(fr.W, fr.H); !ok || px > int64(s.cfg.MaxImagePixels) {
			return nil, badRequest(param, "invalid_video", "frame %d is %dx%d, over the limit of %d pixels", i, fr.W, fr.H, s.cfg.MaxImagePixels)
		}
	}
	return frames, nil
}

// decodeDataURI returns the payload of data:[<mime>][;base64],<data>. Only
// base64 image payloads are accepted.
func decodeDataURI(raw string) ([]byte, error) {
	meta, payload, ok := strings.Cut(strings.TrimPrefix(raw, "data:"), ",")
	if !ok {
		return nil, fmt.Errorf("data URI has no ',' before its payload")
	}
	parts := strings.Split(meta, ";")
	if mime := strings.ToLower(strings.TrimSpace(parts[0])); mime != "" && !strings.HasPrefix(mime, "image/") {
		return nil, fmt.Errorf("data URI media type %q is not an image", parts[0])
	}
	if parts[len(parts)-1] != "base64" {
		return nil, fmt.Errorf("data URI must be base64-encoded (data:image/png;base64,...)")
	}
	return decodeBase64(payload)
}

// decodeBase64 accepts standard or URL-safe base64, padded or not, with
// whitespace ignored.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\n', '\r', '\t':
			return -1
		}
		return r
	}, s)
	if s == "" {
		return nil, fmt.Errorf("empty base64 payload")
	}
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	data, err := enc.WithPadding(base64.NoPadding).DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %v", err)
	}
	return data, nil
}

func (s *Server) fetchImage(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RemoteImageTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.imageClient().Do(req)
	if err != nil {
		if errors.Is(err, errPrivateTarget) {
			return nil, errPrivateTarget
		}
		// The cause (connection refused, DNS, TLS...) is logged, not
		// echoed: it would let a client map the server's network.
		s.log.Warn("remote image fetch failed", "url", u, "err", err)
		if ctx.Err() != nil {
			return nil, errors.New("the image could not be fetched in time")
		}
		return nil, errors.New("the image could not be fetched")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the image server answered HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > s.cfg.MaxBodyBytes {
		return nil, fmt.Errorf("image larger than %d bytes", s.cfg.MaxBodyBytes)
	}
	return data, nil
}
