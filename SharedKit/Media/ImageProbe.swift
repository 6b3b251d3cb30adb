import CVips
import SharedKit

/// libvips, started once per process.
public enum Vips {
    nonisolated(unsafe) private static var started = false

    public static func initialise() {
        if started { return }
        if vips_init("atelier") != 0 { fatalError("libvips could not be initialised") }
        vips_concurrency_set(1)
        // Each request works on different images, so vips's operation cache only holds memory (it grew a
        // generate process to ~90 MiB); keep it small.
        vips_cache_set_max(8)
        vips_cache_set_max_mem(8 * 1024 * 1024)
        started = true
    }
}

/// What an uploaded file is, read from its header only: the format libvips recognises by content (not
/// by name or declared type) and the pixel dimensions, so a decompression bomb is refused before decode.
public struct ImageProbe: Sendable, Equatable {
    public enum Format: String, Sendable { case png, jpeg, webp }

    public let format: Format
    public let width: Int
    public let height: Int

    public var pixels: Int { width * height }

    /// nil when the bytes are not a PNG, JPEG or WebP image libvips can read.
    public static func probe(_ bytes: [UInt8]) -> ImageProbe? {
        Vips.initialise()
        guard !bytes.isEmpty else { return nil }
        let loader: String? = bytes.withUnsafeBytes { raw in
            vips_foreign_find_load_buffer(raw.baseAddress, raw.count).map { String(cString: $0) }
        }
        let format: Format
        switch loader {
        case "VipsForeignLoadPngBuffer": format = .png
        case "VipsForeignLoadJpegBuffer": format = .jpeg
        case "VipsForeignLoadWebpBuffer": format = .webp
        default: return nil
        }
        // The header is read while the bytes' pointer is valid; the image goes before it ends.
        return bytes.withUnsafeBytes { raw -> ImageProbe? in
            guard let image = atl_vips_image_from_buffer(raw.baseAddress, raw.count) else {
                vips_error_clear()
                return nil
            }
            defer { g_object_unref(image) }
            return ImageProbe(format: format, width: Int(vips_image_get_width(image)), height: Int(vips_image_get_height(image)))
        }
    }
}
