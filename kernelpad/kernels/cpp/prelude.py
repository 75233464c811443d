"""The C++ given to every clang-repl before the first cell: the kernel's side of its protocol.

Everything the kernel needs to learn from the interpreter comes on its stdout and stderr between
markers that carry a random token, so user output cannot forge them:

* ``RS T:D<n> RS`` on both streams ends cell input ``n`` (everything before it is that input's);
* ``RS T:V`` value ``RS T:E`` is the value of a cell's last expression;
* ``RS T:I RS`` asks for a line of input; the kernel answers on a pipe of its own (``std::cin``,
  ``scanf`` and ``getchar`` read through a FILE that asks, never from clang-repl's own stdin, which
  carries the code). A line of a single EOT character means end of input. Each input's end resets
  the input state, so what one cell left unread or an end of input does not leak into the next.

stdout is line-buffered so that the output of a cell that crashes is not lost in a buffer.
"""

from __future__ import annotations

RS = "\x1e"

PRELUDE = r"""
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <streambuf>
#include <iostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <unistd.h>
#include <utility>
namespace __kp {
const char* const token = "@TOKEN@";
const int input_fd = @INPUT_FD@;
struct Marker {};
template <class T> struct Held { const T& value; };
template <class T> Held<T> operator,(const T& value, Marker) { return {value}; }
template <class T, class = void> struct streamable : std::false_type {};
template <class T> struct streamable<T, std::void_t<decltype(std::declval<std::ostream&>()
    << std::declval<const T&>())>> : std::true_type {};
template <class T, class = void> struct iterable : std::false_type {};
template <class T> struct iterable<T, std::void_t<decltype(std::begin(std::declval<const T&>())),
    decltype(std::end(std::declval<const T&>()))>> : std::true_type {};
inline std::string type_name(const std::type_info& info) {
  int status = 0;
  char* name = abi::__cxa_demangle(info.name(), nullptr, nullptr, &status);
  std::string result = status == 0 && name ? name : info.name();
  std::free(name);
  return result;
}
template <class T> void write(std::ostream& out, const T& value) {
  using U = std::decay_t<T>;
  if constexpr (std::is_same_v<U, bool>) out << (value ? "true" : "false");
  else if constexpr (std::is_same_v<U, char>) out << '\'' << value << '\'';
  else if constexpr (std::is_same_v<U, std::string>) out << '"' << value << '"';
  else if constexpr (std::is_convertible_v<U, const char*>) out << '"' << value << '"';
  else if constexpr (std::is_base_of_v<std::ios_base, U>) out << "";
  else if constexpr (streamable<U>::value) out << value;
  else if constexpr (iterable<U>::value) {
    out << '{';
    bool first = true;
    for (const auto& item : value) { out << (first ? "" : ", "); write(out, item); first = false; }
    out << '}';
  } else if constexpr (std::is_class_v<U> && std::is_same_v<U, std::pair<typename U::first_type,
      typename U::second_type>>) {
    out << '{'; write(out, value.first); out << ", "; write(out, value.second); out << '}';
  } else out << '(' << type_name(typeid(U)) << ')';
}
inline void show(Marker) {}
template <class T> void show(Held<T> held) {
  if constexpr (std::is_base_of_v<std::ios_base, std::decay_t<T>>) return;
  else {
    std::ostringstream text;
    write(text, held.value);
    std::cout.flush();
    std::printf("\x1e%s:V%s\x1e%s:E", token, text.str().c_str(), token);
    std::fflush(stdout);
  }
}
inline void reset_input();
inline void done(int n) {
  reset_input();
  std::cout.flush();
  std::cerr.flush();
  std::printf("\x1e%s:D%d\x1e", token, n);
  std::fflush(stdout);
  std::fprintf(stderr, "\x1e%s:D%d\x1e", token, n);
  std::fflush(stderr);
}
std::string pending;
inline ssize_t read_input(void*, char* buffer, size_t size) {
  if (pending.empty()) {
    std::cout.flush();
    std::printf("\x1e%s:I\x1e", token);
    std::fflush(stdout);
    std::string line;
    char c;
    while (::read(input_fd, &c, 1) == 1 && c != '\n') line += c;
    if (line == "\x04") return 0;
    pending = line + "\n";
  }
  size_t n = pending.size() < size ? pending.size() : size;
  std::memcpy(buffer, pending.data(), n);
  pending.erase(0, n);
  return static_cast<ssize_t>(n);
}
struct InputBuffer : std::streambuf {
  using std::streambuf::setg;
  char buffer[4096];
  int underflow() override {
    ssize_t n = read_input(nullptr, buffer, sizeof buffer);
    if (n <= 0) return traits_type::eof();
    setg(buffer, buffer, buffer + n);
    return traits_type::to_int_type(buffer[0]);
  }
};
InputBuffer input;
FILE* input_file = nullptr;
inline void reset_input() {
  pending.clear();
  input.setg(nullptr, nullptr, nullptr);
  std::cin.rdbuf(&input);
  std::cin.clear();
  stdin = input_file;
  clearerr(input_file);
}
inline int setup() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  cookie_io_functions_t io{read_input, nullptr, nullptr, nullptr};
  input_file = fopencookie(nullptr, "r", io);
  reset_input();
  return 0;
}
}
int __kp_ready = __kp::setup();
"""


def prelude(token: str, input_fd: int) -> str:
    """The prelude for one interpreter, as clang-repl inputs (one per line)."""
    source = PRELUDE.replace("@TOKEN@", token).replace("@INPUT_FD@", str(input_fd))
    lines = [line for line in source.strip().splitlines() if line.strip()]
    # Each directive alone; the code in one input, continued line by line.
    directives = [line for line in lines if line.startswith("#")]
    code = [line for line in lines if not line.startswith("#")]
    return "\n".join([*directives, " \\\n".join(code)]) + "\n"
