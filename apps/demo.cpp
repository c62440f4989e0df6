// FlashOmni demo (placeholder until the Update–Dispatch demo lands; see issue 2).
#include <cstdio>
int main() {
  std::printf("flashomni_demo: not implemented yet\n");
  return 1;
}
