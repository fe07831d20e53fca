// Internal: parsing and checking of a whole GGUF header held in memory. Kept apart from the
// mapping so that every bound check lives in one place, next to the cursor that enforces it.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "ssmkit/gguf.h"

namespace ssmkit::gguf::detail {

struct parsed_file {
    uint32_t version = 0;
    uint64_t alignment = 32;
    std::map<std::string, value> kv;
    std::vector<tensor_info> tensors;  // data pointers point into `bytes`
    std::map<std::string, size_t> tensor_index;
};

// Checks everything (see gguf.h); throws gguf_error naming `path` on the first problem found.
parsed_file parse(const unsigned char* bytes, size_t size, const std::string& path);

}  // namespace ssmkit::gguf::detail
