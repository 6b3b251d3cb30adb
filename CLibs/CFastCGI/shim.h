#include <fcgiapp.h>
#include <signal.h>
