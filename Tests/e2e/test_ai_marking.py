"""AI-content marking (EU AI Act Art. 50(2)), black-box: every image, thumbnail, poster and video Atelier
makes or transforms carries IPTC's Digital Source Type in XMP, the generator and a creation time, read
back by an independent tool (ExifTool, Debian's libimage-exiftool-perl) from the files served under /media/.

The source type is the truthful one: a trained model at Replicate makes `trainedAlgorithmicMedia` (a
transform of someone's upload: `compositeWithTrainedAlgorithmicMedia`); the embedded renderer is
procedural, so what it makes is `algorithmicMedia` (its inpaint of an upload `compositeSynthetic`, its
resampling upscale of an upload `algorithmicallyEnhanced`). Uploads keep none of their own metadata: GPS,
camera and serial numbers are gone from the stored copy and from every result.
"""
import datetime
import json
import os
import shutil
import subprocess
import tempfile

import pytest
import requests

import imagefiles
from test_accounts import browser  # noqa: F401
from test_generation import (assert_created, fetch, make_video, new_user, user, webp_file,  # noqa: F401
                             png_part)
from test_replicate import Client, accepted, client, media_response, show_image, transform  # noqa: F401

DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"
PRIVATE_TAGS = ("GPSLatitude", "GPSLongitude", "GPSPosition", "SerialNumber", "Make", "Model",
                "BodySerialNumber", "LensSerialNumber", "OwnerName")


def metadata(data):
    """Every tag ExifTool finds in `data`, keyed "Group:Tag" (exiftool -j -G1 -a)."""
    assert shutil.which("exiftool"), "exiftool is missing: install the Debian package libimage-exiftool-perl"
    run = subprocess.run(["exiftool", "-j", "-G1", "-a", "-"], input=data, capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr.decode()
    [tags] = json.loads(run.stdout)
    return tags


def assert_marked(data, source_type, model):
    """The file's XMP says how it was made, by what, and when (within the last ten minutes)."""
    tags = metadata(data)
    assert tags.get("XMP-iptcExt:DigitalSourceType") == DST + source_type, \
        {k: v for k, v in tags.items() if k.startswith("XMP")}
    assert tags.get("XMP-xmp:CreatorTool") == f"Atelier ({model})", tags.get("XMP-xmp:CreatorTool")
    created = datetime.datetime.strptime(tags["XMP-xmp:CreateDate"][:19], "%Y:%m:%d %H:%M:%S")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs((now - created).total_seconds()) < 600, (tags["XMP-xmp:CreateDate"], now)
    private = [k for k in tags if k.split(":")[-1] in PRIVATE_TAGS]
    assert private == [], f"private metadata in a result: {private}"
    return tags


def camera_jpeg():
    """A JPEG as a phone writes it: GPS position, camera make and model, body serial number."""
    data = imagefiles.jpeg(96, 64)
    with tempfile.TemporaryDirectory() as tmp:
        source, target = os.path.join(tmp, "in.jpg"), os.path.join(tmp, "out.jpg")
        with open(source, "wb") as f:
            f.write(data)
        subprocess.run(["exiftool", "-q", "-GPSLatitude=48.8584", "-GPSLatitudeRef=N", "-GPSLongitude=2.2945",
                        "-GPSLongitudeRef=E", "-Make=Canon", "-Model=EOS R5", "-SerialNumber=092021001234",
                        "-o", target, source], check=True, timeout=60)
        with open(target, "rb") as f:
            tagged = f.read()
    tags = metadata(tagged)
    assert "GPS:GPSLatitude" in tags and "ExifIFD:SerialNumber" in tags, "the test photo lacks its metadata"
    return tagged


# ---- the embedded renderer ----------------------------------------------------------------------------

def test_a_generated_image_and_its_thumbnail_are_marked_as_machine_made(stack, user):
    image = user.generate("a lighthouse on a cliff at dusk")["image"]
    assert image["model"] == "atelier-local"
    for url in (image["url"], image["thumbnail_url"]):
        assert_marked(webp_file(stack, url), "algorithmicMedia", "atelier-local")


def test_the_prompt_is_not_written_into_the_file(stack, user):
    """The prompt may be private: the mark names how and when, never what was asked."""
    image = user.generate("my secret birthday surprise for anna")["image"]
    data = webp_file(stack, image["url"])
    assert b"anna" not in data and b"birthday" not in data
    assert not any("anna" in str(v) for v in metadata(data).values())


def test_an_upload_keeps_none_of_its_metadata_and_its_transforms_are_marked_as_composites(stack, user):
    photo = camera_jpeg()
    r = user.transform({"mode": "upscale", "scale": "2"}, {"image": ("photo.jpg", photo, "image/jpeg")})
    _, upscaled = assert_created(r, task="upscale", kind="upscaled")
    assert_marked(webp_file(stack, upscaled["url"]), "algorithmicallyEnhanced", "atelier-local")

    # The stored upload itself is the user's picture: unmarked, and stripped of GPS, camera and serial.
    source = show_image_local(user, upscaled["source_image_id"])
    assert source["kind"] == "uploaded"
    for url in (source["url"], source["thumbnail_url"]):
        tags = metadata(webp_file(stack, url))
        assert "XMP-iptcExt:DigitalSourceType" not in tags, tags
        leaked = [k for k in tags if k.split(":")[-1] in PRIVATE_TAGS]
        assert leaked == [], f"the stored upload kept {leaked}"

    mask = imagefiles.mask_png(96, 64, (20, 10, 60, 40))
    r = user.transform({"mode": "inpaint", "prompt": "a red kite", "image_id": source["id"]},
                       {"mask": ("mask.png", mask, "image/png")})
    _, inpainted = assert_created(r, task="inpaint", kind="inpainted")
    assert_marked(webp_file(stack, inpainted["url"]), "compositeSynthetic", "atelier-local")


def test_a_transform_of_a_transformed_upload_is_still_a_composite(stack, user):
    """An upscale of an inpaint of an upload is still a composite with the user's picture: the source type
    follows the chain of sources, not only the direct one."""
    r = user.transform({"mode": "upscale", "scale": "2"}, {"image": ("photo.png", imagefiles.stripes_png(48, 32), "image/png")})
    _, first = assert_created(r, task="upscale", kind="upscaled")
    mask = imagefiles.mask_png(96, 64, (10, 10, 40, 40))
    r = user.transform({"mode": "inpaint", "prompt": "a lantern", "image_id": first["id"]}, {"mask": ("mask.png", mask, "image/png")})
    _, second = assert_created(r, task="inpaint", kind="inpainted")
    assert_marked(webp_file(stack, second["url"]), "compositeSynthetic", "atelier-local")
    r = user.transform({"mode": "upscale", "scale": "2", "image_id": second["id"]})
    _, third = assert_created(r, task="upscale", kind="upscaled")
    assert_marked(webp_file(stack, third["url"]), "algorithmicallyEnhanced", "atelier-local")


def test_a_transform_of_a_generated_image_stays_machine_made(stack, user):
    image = user.generate("a quiet harbour")["image"]
    r = user.transform({"mode": "upscale", "scale": "2", "image_id": image["id"]})
    _, upscaled = assert_created(r, task="upscale", kind="upscaled")
    assert_marked(webp_file(stack, upscaled["url"]), "algorithmicMedia", "atelier-local")


def test_an_animated_video_and_its_poster_are_marked(stack, user):
    user.make_premium()
    _, video = make_video(user)
    for url in (video["url"], video["poster_url"]):
        data = webp_file(stack, url)
        tags = assert_marked(data, "algorithmicMedia", "atelier-local")
        if url == video["url"]:
            assert imagefiles.webp_info(data)["animated"], "the video is no longer an animation"
            assert "XMP" in tags.get("RIFF:WebP_Flags", ""), tags.get("RIFF:WebP_Flags")


def show_image_local(user, image_id):
    r = user.get(f"/api/v1/images/{image_id}")
    assert r.status_code == 200, r.text
    return r.json()


# ---- made by Replicate's models --------------------------------------------------------------------------

def test_replicates_output_is_marked_as_trained_model_media_with_its_model(replicate_stack, replicate, client):
    mark = replicate.mark()
    r = client.api("POST", "/api/v1/images", {"prompt": "a lighthouse on a cliff at dusk"})
    generation = accepted(r, "image")
    [prediction_id] = replicate.created_since(mark)
    done = client.wait_generation(generation["id"], "succeeded")
    image = show_image(client, done["image_ids"][0])
    assert image["model"] == "black-forest-labs/flux-schnell", image
    for url in (image["url"], image["thumbnail_url"]):
        assert_marked(media_response(replicate_stack, replicate, url).content, "trainedAlgorithmicMedia",
                      "black-forest-labs/flux-schnell")


def test_replicates_inpaint_of_an_upload_is_a_composite(replicate_stack, replicate, client):
    source = imagefiles.stripes_png(64, 64)
    mask = imagefiles.mask_png(64, 64, (16, 16, 48, 48))
    r, _ = transform(client, replicate, {"mode": "inpaint", "prompt": "a red balloon"},
                     {"image": ("source.png", source, "image/png"), "mask": ("mask.png", mask, "image/png")})
    generation = accepted(r, "inpaint")
    done = client.wait_generation(generation["id"], "succeeded")
    [inpainted] = [i for i in (show_image(client, x) for x in done["image_ids"]) if i["kind"] == "inpainted"]
    assert_marked(media_response(replicate_stack, replicate, inpainted["url"]).content,
                  "compositeWithTrainedAlgorithmicMedia", "black-forest-labs/flux-fill-dev")


def test_replicates_mp4_video_carries_the_mark_and_its_frames_unchanged(replicate_stack, replicate, client):
    """The MP4 gets XMP's top-level `uuid` box appended (XMP spec part 3): the provider's boxes are kept
    byte for byte in front of it, so no sample offset moves."""
    client.make_premium()
    mark = replicate.mark()
    r = client.api("POST", "/api/v1/videos", {"prompt": "waves rolling onto a beach"})
    generation = accepted(r, "video")
    [prediction_id] = replicate.created_since(mark)
    done = client.wait_generation(generation["id"], "succeeded")
    video = client.api("GET", f"/api/v1/videos/{done['video_ids'][0]}").json()
    served = media_response(replicate_stack, replicate, video["url"]).content
    [(mp4, _)] = replicate.output_files(prediction_id)
    assert served[:len(mp4)] == mp4, "the provider's boxes were changed"
    extra = served[len(mp4):]
    assert int.from_bytes(extra[:4], "big") == len(extra) and extra[4:8] == b"uuid"
    assert extra[8:24].hex() == "be7acfcb97a942e89c71999491e3afac", "not XMP's box"
    assert_marked(served, "trainedAlgorithmicMedia", "minimax/video-01")
