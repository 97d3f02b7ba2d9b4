# Packs gems installed by Debian's packages (ruby-rack, ruby-webrick) back
# into .gem files, for a vendor/cache that `bundle install --local` installs
# from on a machine that reaches no gem server.
#
#   ruby debian-gems.rb DIR NAME...
require "rubygems/package"
require "fileutils"
require "tmpdir"

# The same gems make the same files, so that an unchanged vendor/cache keys
# the same environment.
ENV["SOURCE_DATE_EPOCH"] ||= "315619200"

out = File.expand_path(ARGV.shift)
FileUtils.mkdir_p(out)
ARGV.each do |name|
  spec = Gem::Specification.find_by_name(name).dup
  Dir.mktmpdir do |stage|
    FileUtils.cp_r(Dir.glob(File.join(spec.full_gem_path, "*")), stage)
    Dir.chdir(stage) do
      spec.files = Dir.glob("**/*", File::FNM_DOTMATCH).select { |f| File.file?(f) }
      Gem::DefaultUserInteraction.use_ui(Gem::SilentUI.new) do
        file = Gem::Package.build(spec)
        FileUtils.mv(file, File.join(out, File.basename(file)))
      end
    end
  end
end
