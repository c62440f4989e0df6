// FlashOmni C API layer: helpers shared by the C API translation units (argument conversion from
// the plain C structs, the exception firewall, the thread-local error message). Internal.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <string>

#include "flashomni/common.h"
#include "flashomni/flashomni.h"
#include "flashomni/symbols.h"
#include "flashomni/tensor.h"

namespace flashomni::capi {

void set_last_error(const char* message);
const char* last_error_message();

// Runs `body` and maps every exception to a status; nothing may cross the C boundary.
template <typename Body>
int guarded(Body&& body) {
  try {
    body();
    return static_cast<int>(Status::kOk);
  } catch (const Error& e) {
    set_last_error(e.what());
    return static_cast<int>(e.status());
  } catch (const std::bad_alloc&) {
    set_last_error("out of host memory");
    return static_cast<int>(Status::kInternal);
  } catch (const std::exception& e) {
    set_last_error(e.what());
    return static_cast<int>(Status::kInternal);
  } catch (...) {
    set_last_error("unknown exception");
    return static_cast<int>(Status::kInternal);
  }
}

// Copies an argument struct into a zeroed full-size one: callers compiled against an older header
// pass a smaller struct_size (fields are only appended), newer ones a larger one we cannot honour.
template <typename Args>
Args read_args(const Args* args, std::size_t v1_size, const char* name) {
  FLASHOMNI_CHECK_ARG(args != nullptr, name, "must not be NULL");
  const auto size = static_cast<std::size_t>(args->struct_size);
  FLASHOMNI_CHECK_ARG(args->struct_size > 0 && size >= v1_size && size <= sizeof(Args),
                      std::string(name) + ".struct_size", "expected sizeof(", name,
                      ") = ", sizeof(Args), " (or an older ABI size >= ", v1_size, "), got ",
                      args->struct_size);
  Args copy{};
  std::memcpy(&copy, args, size);
  return copy;
}

DType to_dtype(int32_t value, const std::string& name);
Device to_device(int32_t value, const std::string& name);

// Converts a view; data == NULL yields an undefined TensorRef ("not given"). Checks the enum
// values, 0 <= ndim <= 4 and non-negative sizes, naming "<name>.dtype", "<name>.ndim", ...
TensorRef to_tensor_ref(const fo_tensor& t, const char* name);
SymbolsRef to_symbols_ref(const fo_symbols& s, const char* name);
SeqLens to_seqlens(const fo_seqlens* s);

}  // namespace flashomni::capi
