// Compiled specializations, looked up by (op, width, tile). Each entry is logged once, the first
// time it is launched, when SSMKIT_LOG=1: its name and what cudaFuncGetAttributes reports, so a
// register-count or occupancy surprise shows in the log of the run that hit it.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace ssmkit::cuda {

struct kernel_key {
    std::string op;  // "ssm_conv", "ssm_conv_bias_silu", "ssm_scan_seq", ...
    int width;       // filter width (conv; 0 = any width), d_state (scan)
    int tile;        // tokens per tile (conv), elements per thread (scan)
    bool operator<(const kernel_key& o) const {
        return std::tie(op, width, tile) < std::tie(o.op, o.width, o.tile);
    }
};

struct kernel_entry {
    const void* fn = nullptr;
    std::string name;
};

class kernel_registry {
public:
    static kernel_registry& get();
    void add(const kernel_key& k, const void* fn, std::string name);
    // nullptr when no specialization exists for the key.
    const kernel_entry* find(const kernel_key& k);
    // Logs the entry's attributes on its first use (SSMKIT_LOG=1).
    void note_use(const kernel_key& k, const kernel_entry& e);

private:
    std::mutex mu_;
    std::map<kernel_key, kernel_entry> entries_;
    std::map<const void*, bool> logged_;
};

bool log_enabled();

}  // namespace ssmkit::cuda
