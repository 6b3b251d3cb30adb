public import SharedKit
import SharedKitCore

#if canImport(Glibc)
import Glibc
#endif

/// The embedded provider's image maker: a procedural painting derived from the prompt, style, colour
/// and seed. The same inputs give the same pixels; a different word, style or colour gives visibly
/// different ones. It renders at a long side of `longSide` pixels in the requested aspect ratio.
public struct LocalRenderer: Sendable {
    /// The model name recorded for what the embedded renderer makes.
    public static let model = "atelier-local"

    public let longSide: Int

    public init(longSide: Int = 768) {
        self.longSide = longSide
    }

    /// The exact ratio (not the provider's rounded pixel sizes) at `longSide` pixels on the long side.
    public func size(for ratio: Catalog.AspectRatio) -> (width: Int, height: Int) {
        let parts = ratio.id.split(separator: ":").compactMap { Double($0) }
        let (w, h) = parts.count == 2 ? (parts[0], parts[1]) : (Double(ratio.width), Double(ratio.height))
        let scale = Double(longSide) / max(w, h)
        return (max(16, Int((w * scale).rounded())), max(16, Int((h * scale).rounded())))
    }

    public func render(
        prompt: String, style: Catalog.Style, colour: Catalog.Colour, ratio: Catalog.AspectRatio, seed: Int64,
        phase: Double = 0
    ) -> RGBImage {
        let (width, height) = size(for: ratio)
        let scene = Scene(prompt: prompt, style: style.id, colour: colour, seed: seed)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let block = style.id == "pixel-art" ? max(4, width / 64) : 1
        pixels.withUnsafeMutableBufferPointer { out in
            for y in 0..<height {
                for x in 0..<width {
                    let sx = (x / block) * block, sy = (y / block) * block
                    let u = Double(sx) / Double(width), v = Double(sy) / Double(height)
                    let (r, g, b) = scene.colour(u: u, v: v, aspect: Double(width) / Double(height), phase: phase)
                    let i = (y * width + x) * 3
                    out[i] = r
                    out[i + 1] = g
                    out[i + 2] = b
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// A short loop: `count` frames of the same scene drifting.
    public func frames(
        prompt: String, style: Catalog.Style, colour: Catalog.Colour, ratio: Catalog.AspectRatio, seed: Int64,
        count: Int
    ) -> [RGBImage] {
        (0..<count).map {
            render(
                prompt: prompt, style: style, colour: colour, ratio: ratio, seed: seed, phase: 2 * Double.pi * Double($0) / Double(count))
        }
    }

    /// Fills the masked pixels (mask > 127) from their surroundings with a push-pull pyramid: known
    /// pixels are averaged down to coarser levels and pulled back up into the hole, so the fill blends
    /// smoothly with what surrounds it. Unmasked pixels are returned unchanged.
    public static func inpaint(_ image: RGBImage, mask: [UInt8]) -> RGBImage {
        let w = image.width, h = image.height
        var levels: [(w: Int, h: Int, colour: [Float], weight: [Float])] = []
        var colour = [Float](repeating: 0, count: w * h * 3)
        var weight = [Float](repeating: 0, count: w * h)
        for i in 0..<(w * h) where mask[i] <= 127 {
            weight[i] = 1
            for c in 0..<3 { colour[i * 3 + c] = Float(image.pixels[i * 3 + c]) }
        }
        levels.append((w, h, colour, weight))
        // Push: halve until one pixel, summing weighted colour.
        while levels.last!.w > 1 || levels.last!.h > 1 {
            let fine = levels.last!
            let cw = max(1, (fine.w + 1) / 2), ch = max(1, (fine.h + 1) / 2)
            var cc = [Float](repeating: 0, count: cw * ch * 3)
            var cwt = [Float](repeating: 0, count: cw * ch)
            for y in 0..<fine.h {
                for x in 0..<fine.w {
                    let f = y * fine.w + x, k = (y / 2) * cw + (x / 2)
                    let wt = fine.weight[f]
                    if wt == 0 { continue }
                    cwt[k] += wt
                    for c in 0..<3 { cc[k * 3 + c] += fine.colour[f * 3 + c] * wt }
                }
            }
            for k in 0..<(cw * ch) where cwt[k] > 0 {
                for c in 0..<3 { cc[k * 3 + c] /= cwt[k] }
                cwt[k] = min(cwt[k], 1)
            }
            levels.append((cw, ch, cc, cwt))
        }
        // Pull: from coarse to fine, fill what a level does not know from the (bilinear) coarser level.
        for index in stride(from: levels.count - 2, through: 0, by: -1) {
            let coarse = levels[index + 1]
            var fine = levels[index]
            for y in 0..<fine.h {
                for x in 0..<fine.w {
                    let f = y * fine.w + x
                    let missing = 1 - fine.weight[f]
                    if missing <= 0 { continue }
                    let gx = min(Float(coarse.w - 1), max(0, (Float(x) - 0.5) / 2)),
                        gy = min(Float(coarse.h - 1), max(0, (Float(y) - 0.5) / 2))
                    let x0 = Int(gx), y0 = Int(gy), x1 = min(x0 + 1, coarse.w - 1), y1 = min(y0 + 1, coarse.h - 1)
                    let fx = gx - Float(x0), fy = gy - Float(y0)
                    for c in 0..<3 {
                        let a = coarse.colour[(y0 * coarse.w + x0) * 3 + c] * (1 - fx) + coarse.colour[(y0 * coarse.w + x1) * 3 + c] * fx
                        let b = coarse.colour[(y1 * coarse.w + x0) * 3 + c] * (1 - fx) + coarse.colour[(y1 * coarse.w + x1) * 3 + c] * fx
                        let pulled = a * (1 - fy) + b * fy
                        fine.colour[f * 3 + c] = fine.colour[f * 3 + c] * fine.weight[f] + pulled * missing
                    }
                    fine.weight[f] = 1
                }
            }
            levels[index] = fine
        }
        var result = image
        let filled = levels[0].colour
        for i in 0..<(w * h) where mask[i] > 127 {
            for c in 0..<3 { result.pixels[i * 3 + c] = UInt8(max(0, min(255, filled[i * 3 + c].rounded()))) }
        }
        return result
    }
}

/// The parameters of one picture, drawn from a hash of what was asked for.
struct Scene {
    let palette: [(Double, Double, Double)]
    let waves: [(fx: Double, fy: Double, phase: Double, weight: Double)]
    let orbs: [(x: Double, y: Double, radius: Double, strength: Double)]
    let bands: Int
    let style: String

    init(prompt: String, style: String, colour: Catalog.Colour, seed: Int64) {
        var stream = ByteStream(Digest.sha256("\(prompt.lowercased())|\(style)|\(colour.id)|\(seed)"))
        var promptStream = ByteStream(Digest.sha256("\(prompt.lowercased())|\(seed)"))
        self.style = style
        if colour.palette.isEmpty {
            let hue = promptStream.unit()
            palette = (0..<4).map { i in
                Scene.hsv((hue + Double(i) * 0.09).truncatingRemainder(dividingBy: 1), 0.55 + 0.1 * Double(i % 2), 0.18 + 0.26 * Double(i))
            }
        } else {
            palette = colour.palette.map { (Double($0.0), Double($0.1), Double($0.2)) }
        }
        waves = (0..<4).map { _ in
            (fx: 1 + promptStream.unit() * 7, fy: 1 + promptStream.unit() * 7, phase: stream.unit() * 6.283, weight: 0.4 + stream.unit())
        }
        orbs = (0..<(3 + Int(promptStream.unit() * 4))).map { _ in
            (x: promptStream.unit(), y: promptStream.unit(), radius: 0.08 + promptStream.unit() * 0.25, strength: 0.4 + stream.unit() * 0.6)
        }
        switch style {
        case "anime", "digital-art": bands = 6
        case "pixel-art": bands = 8
        default: bands = 0
        }
    }

    func colour(u: Double, v: Double, aspect: Double, phase: Double) -> (UInt8, UInt8, UInt8) {
        var t = 0.0
        var total = 0.0
        for wave in waves {
            t += wave.weight * sin(wave.fx * u * 6.283 + wave.fy * v * 6.283 + wave.phase + phase)
            total += wave.weight
        }
        t = 0.5 + 0.5 * t / total
        var glow = 0.0
        for orb in orbs {
            let dx = (u - orb.x) * aspect, dy = v - orb.y
            let d = (dx * dx + dy * dy).squareRoot() / orb.radius
            glow += orb.strength * exp(-d * d)
        }
        t = min(1, max(0, 0.65 * t + 0.45 * min(glow, 1.2) - 0.1 + 0.15 * (1 - v)))
        if bands > 0 { t = (t * Double(bands)).rounded(.down) / Double(bands) }
        var (r, g, b) = Scene.sample(palette, t)
        switch style {
        case "sketch":
            // Graphite: cross-hatching whose density follows how dark the scene is there.
            let dark = 1 - (0.3 * r + 0.59 * g + 0.11 * b) / 255
            let first = sin((u * aspect + v) * 380) > 1 - 1.6 * dark
            let second = dark > 0.55 && sin((u * aspect - v) * 380) > 1.9 - 2.4 * dark
            let value = first || second ? 70.0 : 242.0
            (r, g, b) = (value, value, value * 0.97)
        case "watercolor":
            // Washes: lighter pigment with soft blotches of paper showing through.
            let bloom = 12 * sin(u * 23 + 3 * sin(v * 17)) * sin(v * 19 - 2 * sin(u * 13))
            (r, g, b) = (r * 0.75 + 64 + bloom, g * 0.75 + 64 + bloom, b * 0.75 + 64 + bloom)
        case "cinematic":
            let vignette = 1 - 0.55 * ((u - 0.5) * (u - 0.5) + (v - 0.5) * (v - 0.5)) * 2.2
            (r, g, b) = (r * vignette, g * vignette * 0.96, b * vignette * 1.04)
        case "3d-render":
            let shade = 0.75 + 0.35 * (1 - v) * glow
            (r, g, b) = (r * shade, g * shade, b * shade)
        case "oil-painting":
            let stroke = 14 * sin(u * 260 + 9 * sin(v * 40))
            (r, g, b) = (r + stroke, g + stroke, b + stroke)
        default:
            break
        }
        func byte(_ value: Double) -> UInt8 { UInt8(max(0, min(255, value.rounded()))) }
        return (byte(r), byte(g), byte(b))
    }

    static func sample(_ palette: [(Double, Double, Double)], _ t: Double) -> (Double, Double, Double) {
        let position = t * Double(palette.count - 1)
        let i = min(palette.count - 2, Int(position))
        let f = position - Double(i)
        let a = palette[i], b = palette[i + 1]
        return (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, a.2 + (b.2 - a.2) * f)
    }

    static func hsv(_ h: Double, _ s: Double, _ v: Double) -> (Double, Double, Double) {
        let i = Int(h * 6) % 6, f = h * 6 - Double(Int(h * 6))
        let p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s)
        let (r, g, b): (Double, Double, Double)
        switch i {
        case 0: (r, g, b) = (v, t, p)
        case 1: (r, g, b) = (q, v, p)
        case 2: (r, g, b) = (p, v, t)
        case 3: (r, g, b) = (p, q, v)
        case 4: (r, g, b) = (t, p, v)
        default: (r, g, b) = (v, p, q)
        }
        return (r * 255, g * 255, b * 255)
    }
}

/// Reads a hash as a stream of numbers in [0, 1), rehashing when it runs out.
struct ByteStream {
    var bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    mutating func unit() -> Double {
        if index + 2 > bytes.count {
            bytes = Digest.sha256(bytes)
            index = 0
        }
        let value = Int(bytes[index]) << 8 | Int(bytes[index + 1])
        index += 2
        return Double(value) / 65536
    }
}
