import CVips
import SharedKit
import SharedKitCore

/// An 8-bit sRGB image in memory, three bytes a pixel, row by row.
public struct RGBImage: Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3)
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

public struct ImagingError: Error, CustomStringConvertible {
    public let description: String
}

/// Encoding, decoding and resampling through libvips. Images are built from pixels, so nothing of an
/// upload's own metadata (camera, GPS, serial numbers) ever reaches a stored file; what Atelier made
/// carries its `Provenance` mark instead, and nothing else.
public enum Imaging {
    public enum Format: String, Sendable {
        case webp, png, jpeg
        public var contentType: String { "image/\(rawValue)" }
        public var fileExtension: String { self == .jpeg ? "jpg" : rawValue }
    }

    /// The most pixels a WebP image can have on a side (the format's 14-bit dimensions).
    public static let webpMaxSide = 16383

    /// Encodes the image; a WebP is first shrunk to fit `webpMaxSide` (a provider's output can be wider
    /// than the format allows; uploads that are wider are refused before they get here).
    public static func encode(_ image: RGBImage, as format: Format = .webp, quality: Int = 88, mark: Provenance?) throws -> [UInt8] {
        var vips = try VipsRef(image)
        let side = max(image.width, image.height)
        if format == .webp, side > webpMaxSide {
            let factor = Double(webpMaxSide) / Double(side)
            vips = try vips.apply { atl_vips_resize_lanczos($0, $1, factor) }
            // Rounding can land one pixel over: crop what is left.
            let width = min(Int(vips_image_get_width(vips.pointer)), webpMaxSide)
            let height = min(Int(vips_image_get_height(vips.pointer)), webpMaxSide)
            vips = try vips.apply { atl_vips_crop($0, $1, 0, 0, Int32(width), Int32(height)) }
        }
        return try save(vips, format, quality: quality, mark: mark)
    }

    /// A one-band PNG (masks for providers).
    public static func encodeGrey(width: Int, height: Int, values: [UInt8]) throws -> [UInt8] {
        try encodePNG(width: width, height: height, bands: 1, values: values)
    }

    /// A mask as OpenAI's image edits take it: a grey-and-alpha PNG, fully transparent where `values`
    /// (a one-band mask) is white, that is where the picture is to be repainted, and opaque elsewhere.
    public static func encodeTransparencyMask(width: Int, height: Int, values: [UInt8]) throws -> [UInt8] {
        var interleaved = [UInt8](repeating: 0, count: values.count * 2)
        for (index, value) in values.enumerated() { interleaved[index * 2 + 1] = value >= 128 ? 0 : 255 }
        return try encodePNG(width: width, height: height, bands: 2, values: interleaved)
    }

    static func encodePNG(width: Int, height: Int, bands: Int, values: [UInt8]) throws -> [UInt8] {
        Vips.initialise()
        let made = values.withUnsafeBytes {
            vips_image_new_from_memory_copy($0.baseAddress, $0.count, Int32(width), Int32(height), Int32(bands), VIPS_FORMAT_UCHAR)
        }
        guard let made else { throw failure("cannot wrap mask") }
        return try save(VipsRef(owning: made), .png, quality: 0, mark: nil)
    }

    /// Decodes an upload whose header was already checked (`ImageProbe`) into sRGB without alpha.
    /// libvips reads the buffer lazily, until the pixels are copied out: the whole pipeline runs while
    /// the bytes' pointer is valid.
    public static func decode(_ bytes: [UInt8]) throws -> RGBImage {
        Vips.initialise()
        return try bytes.withUnsafeBytes { raw in
            guard let loaded = atl_vips_image_from_buffer_random(raw.baseAddress, raw.count) else {
                throw failure("cannot decode the image")
            }
            var image = VipsRef(owning: loaded)
            image = try image.apply { atl_vips_to_srgb($0, $1) }
            if vips_image_get_bands(image.pointer) == 4 || vips_image_hasalpha(image.pointer) != 0 {
                image = try image.apply { atl_vips_flatten_white($0, $1) }
            }
            image = try image.apply { atl_vips_cast_uchar($0, $1) }
            if vips_image_get_bands(image.pointer) > 3 {
                image = try image.apply { atl_vips_extract_bands($0, $1, 0, 3) }
            }
            return try image.rgb()
        }
    }

    /// A one-band mask (0…255) from an uploaded mask image (read, like `decode`, while the bytes are valid).
    public static func decodeMask(_ bytes: [UInt8]) throws -> (width: Int, height: Int, values: [UInt8]) {
        Vips.initialise()
        return try bytes.withUnsafeBytes { raw in
            guard let loaded = atl_vips_image_from_buffer_random(raw.baseAddress, raw.count) else {
                throw failure("cannot decode the mask")
            }
            var image = VipsRef(owning: loaded)
            if vips_image_hasalpha(image.pointer) != 0 { image = try image.apply { atl_vips_flatten_white($0, $1) } }
            image = try image.apply { atl_vips_to_bw($0, $1) }
            image = try image.apply { atl_vips_cast_uchar($0, $1) }
            if vips_image_get_bands(image.pointer) > 1 { image = try image.apply { atl_vips_extract_bands($0, $1, 0, 1) } }
            let values = try image.memory()
            return (Int(vips_image_get_width(image.pointer)), Int(vips_image_get_height(image.pointer)), values)
        }
    }

    /// High-quality (Lanczos-3) resampling by a factor.
    public static func resize(_ image: RGBImage, scale: Double) throws -> RGBImage {
        try VipsRef(image).apply { atl_vips_resize_lanczos($0, $1, scale) }.apply { atl_vips_cast_uchar($0, $1) }.rgb()
    }

    /// The image resampled to exactly `width`×`height` (a provider's result brought back to its source's size).
    public static func resize(_ image: RGBImage, width: Int, height: Int) throws -> RGBImage {
        if image.width == width && image.height == height { return image }
        return try VipsRef(image).apply { atl_vips_resize_exact($0, $1, Int32(width), Int32(height)) }
            .apply { atl_vips_cast_uchar($0, $1) }.rgb()
    }

    /// A WebP thumbnail at most `width` pixels wide (and as tall, keeping the aspect ratio).
    public static func thumbnail(_ image: RGBImage, width: Int = 384, mark: Provenance?) throws -> [UInt8] {
        let small = try VipsRef(image).apply { atl_vips_thumbnail_image($0, $1, Int32(width)) }
        return try save(small, .webp, quality: 80, mark: mark)
    }

    /// An animated WebP: the frames one after another, `delayMs` apart, looping.
    public static func animatedWebP(_ frames: [RGBImage], delayMs: Int, mark: Provenance?) throws -> [UInt8] {
        guard let first = frames.first, frames.allSatisfy({ $0.width == first.width && $0.height == first.height }) else {
            throw failure("frames must share one size")
        }
        // Frames stacked top to bottom are simply their pixel rows one after another.
        let strip = RGBImage(width: first.width, height: first.height * frames.count, pixels: frames.flatMap(\.pixels))
        let animation = try VipsRef(strip)
        vips_image_set_int(animation.pointer, "page-height", Int32(first.height))
        vips_image_set_int(animation.pointer, "loop", 0)
        var delays = [Int32](repeating: Int32(delayMs), count: frames.count)
        vips_image_set_array_int(animation.pointer, "delay", &delays, Int32(frames.count))
        return try save(animation, .webp, quality: 80, mark: mark)
    }

    /// Encodes `image`; with a mark, its XMP packet goes into the file (the savers keep metadata then), without
    /// one every metadata field is stripped.
    static func save(_ unmarked: VipsRef, _ format: Format, quality: Int, mark: Provenance?) throws -> [UInt8] {
        var buffer: UnsafeMutableRawPointer?
        var length = 0
        let result: Int32
        var strip: Int32 = 1
        var image = unmarked
        if let mark {
            // On a copy: an operation's output may be shared through libvips' cache and must not change.
            image = try unmarked.apply { atl_vips_copy($0, $1) }
            let packet = Array(mark.xmp.utf8)
            packet.withUnsafeBytes { vips_image_set_blob_copy(image.pointer, "xmp-data", $0.baseAddress, $0.count) }
            strip = 0
        }
        switch format {
        case .webp: result = atl_vips_webpsave(image.pointer, &buffer, &length, Int32(quality), strip)
        case .png: result = atl_vips_pngsave(image.pointer, &buffer, &length, strip)
        case .jpeg: result = atl_vips_jpegsave(image.pointer, &buffer, &length, Int32(quality), strip)
        }
        guard result == 0, let buffer else { throw failure("cannot encode \(format.rawValue)") }
        defer { g_free(buffer) }
        return Array(UnsafeRawBufferPointer(start: buffer, count: length))
    }

    static func failure(_ what: String) -> ImagingError {
        let detail = vips_error_buffer().map { String(cString: $0) } ?? ""
        vips_error_clear()
        return ImagingError(description: "\(what): \(detail.trimmingWhitespace().description)")
    }
}

/// One reference to a `VipsImage`, released in `deinit`.
final class VipsRef {
    let pointer: UnsafeMutablePointer<VipsImage>

    init(owning pointer: UnsafeMutablePointer<VipsImage>) {
        self.pointer = pointer
    }

    convenience init(_ image: RGBImage) throws {
        Vips.initialise()
        let made = image.pixels.withUnsafeBytes {
            vips_image_new_from_memory_copy($0.baseAddress, $0.count, Int32(image.width), Int32(image.height), 3, VIPS_FORMAT_UCHAR)
        }
        guard let made else { throw Imaging.failure("cannot wrap pixels") }
        self.init(owning: made)
        vips_image_set_int(made, "interpretation", Int32(VIPS_INTERPRETATION_sRGB.rawValue))
    }

    deinit {
        g_object_unref(pointer)
    }

    /// Runs an operation that makes a new image from this one.
    func apply(
        _ operation: (UnsafeMutablePointer<VipsImage>, UnsafeMutablePointer<UnsafeMutablePointer<VipsImage>?>) -> Int32
    ) throws -> VipsRef {
        var out: UnsafeMutablePointer<VipsImage>?
        guard operation(pointer, &out) == 0, let out else { throw Imaging.failure("image operation failed") }
        return VipsRef(owning: out)
    }

    func memory() throws -> [UInt8] {
        var size = 0
        guard let raw = vips_image_write_to_memory(pointer, &size) else { throw Imaging.failure("cannot read pixels") }
        defer { g_free(raw) }
        return Array(UnsafeRawBufferPointer(start: raw, count: size))
    }

    func rgb() throws -> RGBImage {
        RGBImage(width: Int(vips_image_get_width(pointer)), height: Int(vips_image_get_height(pointer)), pixels: try memory())
    }
}
